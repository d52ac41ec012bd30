"""The environment a candidate file is imported into, set up inside the sandboxed worker.

`prepare` runs in the child right before the candidate is loaded and decides, for this phase:

- **kernels** — `import fla` resolves to the real flash-linear-attention package only when it is
  installed *and* this phase trains on CUDA; everywhere else (CPU, and every probe phase, whose
  tensors are CPU tensors) it resolves to `archscout.compat.fla`, through a meta-path alias that
  exists only in this process (nothing named `fla` is installed into the user's environment).
  `transformers.processing_utils` (imported by published files for the `Unpack` type hint only) is
  served by a stub: the real module costs ~9 s of imports per child for one `typing` name; without
  transformers installed the `transformers` package itself is stubbed too.
- **compile** — `torch.compile` is an identity decorator on CPU and in probes (compilation costs
  25-75 s per process on CPU and the probes run tiny shapes once), and left alone for training on
  CUDA, where ASI-Arch's files expect it.
- **dtype** — with bf16 autocast on (the preset's `bf16_autocast`, same rule on CPU and GPU) the
  candidate runs as written. Without autocast, a file that casts to bfloat16/float16 itself (written
  for a GPU autocast context, where a bf16 @ fp32 matmul is legal) would fail with "expected scalar
  type Float but found BFloat16"; for such files (found by reading the source) a TorchFunctionMode
  makes those casts keep the working precision (float32 in training, float64 in the exact probes),
  so the probes still compare in float64 and training runs in float32.
- **extra import paths** — the study's `candidate_paths`, put first on sys.path (the worker's
  environment drops PYTHONPATH); the sandbox must bind them read-only.

It returns what it decided as strings, recorded in the run (`RunResult.runtime`). The worker probes
and trains in one process, so `prepare` first undoes what an earlier call set up (the alias finder
and the modules it served, the extra paths, the identity compile, the precision mode): training imports the candidate afresh into its own environment, as a second
process did before. Modules a helper library on the extra paths imported stay loaded (on CPU both
phases resolve every import the same way; on CUDA with fla installed such a library keeps the
compat kernels it first saw). What it does not do: install anything, choose the device, or relax any probe.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

LOW_PRECISION = (torch.bfloat16, torch.float16)
CAST_NAMES = {"bfloat16", "float16", "half", "bf16"}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        _served.append(spec.name)
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass  # the target module was executed under its own name


class AliasFinder(importlib.abc.MetaPathFinder):
    """Serves `alias.rest` as the already importable module `target.rest`, for the given prefixes."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases

    def find_spec(self, fullname, path=None, target=None):
        for alias, real in self.aliases.items():
            if fullname == alias or fullname.startswith(alias + "."):
                name = real + fullname[len(alias):]
                if importlib.util.find_spec(name) is None:
                    return None
                is_pkg = importlib.util.find_spec(name).submodule_search_locations is not None
                return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name), is_package=is_pkg)
        return None


class KeepPrecision(TorchFunctionMode):
    """Casts to bfloat16/float16 of float32/float64 tensors keep the tensor's dtype; factory calls
    asking for a low-precision dtype get the default dtype instead."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.Tensor.bfloat16, torch.Tensor.half) and _high(args[0]):
            return args[0]
        if func in (torch.Tensor.to, torch.Tensor.type) and args and _high(args[0]):
            args = tuple(args[0].dtype if a in LOW_PRECISION else a for a in args)
            if kwargs.get("dtype") in LOW_PRECISION:
                kwargs["dtype"] = args[0].dtype
        elif kwargs.get("dtype") in LOW_PRECISION:
            kwargs["dtype"] = torch.get_default_dtype()
        return func(*args, **kwargs)


def _high(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64)


def casts_to_low_precision(source: str) -> bool:
    """Whether the file names torch.bfloat16 / float16 / .half() / .bfloat16() anywhere."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Attribute) and n.attr in CAST_NAMES for n in ast.walk(tree))


def _identity_compile(model=None, **kwargs):
    # @torch.compile, @torch.compile(...), torch.compile(fn): all return the function unchanged
    if model is None:
        return lambda fn: fn
    return model


def _fla_version() -> str | None:
    if importlib.util.find_spec("fla") is None:
        return None
    try:
        return importlib.metadata.version("flash-linear-attention")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# what the last `prepare` changed in this process, undone by `reset`
_served: list[str] = []  # module names an alias finder created
_undo: list = []


def reset() -> None:
    """Undo the last `prepare`: the next import of the candidate (and of what it imports through an
    alias or from the extra paths) runs again, in the environment the next `prepare` sets up."""
    while _undo:
        _undo.pop()()
    for name in _served:
        sys.modules.pop(name, None)
    _served.clear()


def prepare(
    phase: str, device: str, candidate: Path, autocast: bool, extra_paths: list[str] | None = None
) -> dict[str, str]:
    """Set up this process for importing `candidate`; returns the decisions for the run record."""
    reset()
    cuda_train = phase == "train" and device.startswith("cuda")
    paths = list(extra_paths or [])
    for path in reversed(paths):
        sys.path.insert(0, path)
    if paths:
        _undo.append(lambda: [sys.path.remove(p) for p in paths if p in sys.path])
    aliases = {}
    fla_version = _fla_version() if cuda_train else None
    if fla_version:
        kernels = f"fla {fla_version}"
    else:
        kernels = "compat"
        aliases["fla"] = "archscout.compat.fla"
    if importlib.util.find_spec("transformers") is None:
        aliases["transformers"] = "archscout.compat.transformers"
    else:
        aliases["transformers.processing_utils"] = "archscout.compat.transformers.processing_utils"
    finder = AliasFinder(aliases)
    sys.meta_path.insert(0, finder)
    _undo.append(lambda: sys.meta_path.remove(finder))
    if cuda_train:
        compile_policy = "on (cuda training)"
    else:
        original, torch.compile = torch.compile, _identity_compile
        _undo.append(lambda: setattr(torch, "compile", original))
        compile_policy = "off (probes)" if phase == "probe" else "off (cpu)"
    if autocast and (phase == "train"):
        dtype = "bf16 autocast"
    elif casts_to_low_precision(candidate.read_text()):
        mode = KeepPrecision()
        mode.__enter__()  # until `reset`, or the end of this short-lived process
        _undo.append(lambda: mode.__exit__(None, None, None))
        dtype = "fp32; the file's bf16/fp16 casts keep fp32 (fp64 in exact probes)"
    else:
        dtype = "fp32"
    return {"kernels": kernels, "compile": compile_policy, "dtype": dtype}


def prepare_for_job(job, phase: str) -> dict[str, str]:
    """`prepare` for one phase of the worker's Job: resolved device, preset autocast, extra paths."""
    device = job.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return prepare(phase, device, Path(job.candidate), job.preset.bf16_autocast, job.extra_paths)
