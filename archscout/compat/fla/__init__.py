"""Pure-PyTorch stand-in for flash-linear-attention's API (fla 0.2-0.6 signatures), for CPUs.

Covers what candidate files import from `fla`: `fla.modules` (ShortConvolution, RMSNorm,
FusedRMSNormGated, l2norm), `fla.layers.utils` (get_unpad_data, index_first_axis, pad_input),
`fla.models.utils.Cache`, and the `fla.ops` delta rule, gated delta rule, GLA, simple GLA, linear
attention and retention functions (`chunk_*`, `fused_recurrent_*`, with `initial_state`,
`output_final_state`, `cu_seqlens`). The maths is archscout's own chunkwise ops
(`archscout.space.ops`, each tested against a token-by-token reference); no Triton, no fused
kernels, no fla layers or models beyond these. On a CUDA machine with the real package installed the
worker imports the real `fla` instead.
"""

from archscout.compat.fla import layers, models, modules, ops

__version__ = "compat"
__all__ = ["layers", "models", "modules", "ops"]
