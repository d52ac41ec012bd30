"""Compatibility layers that let candidate files written against other libraries run here.

`archscout.compat.fla` is a pure-PyTorch stand-in for the flash-linear-attention (`fla`) API surface
that published candidates use. Inside the sandboxed worker it is importable as `fla` (see
`archscout.evaluate.candidate_env`); it is never installed as a top-level `fla` package.
"""
