"""The candidate contract: what a token-mixer file must provide, and how it is loaded and called.

A candidate is one Python source file defining an `nn.Module` with the flash-linear-attention layer
interface:

    __init__(self, d_model|hidden_size=..., num_heads=..., layer_idx=None, **kwargs)
    forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
            output_attentions=False, **kwargs) -> (o, aux_loss_or_None, cache) | o

This module is imported *inside the sandboxed worker only*: loading a candidate executes its code,
which the parent process never does. It covers loading, class discovery, construction and the
normalisation of the forward's return value; it does not train or probe anything.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archscout.records import FailureKind

# ASI-Arch's published files all name their mixer DeltaNet; look for it first.
DEFAULT_CLASS_NAMES = ("DeltaNet",)
FORWARD_ARGS = ("hidden_states", "attention_mask", "past_key_values", "use_cache", "output_attentions")


class ContractError(Exception):
    """A candidate that does not satisfy the contract. `kind` classifies it for the RunResult."""

    def __init__(self, kind: FailureKind, message: str, log_tail: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log_tail = log_tail


def _tail(exc: BaseException, limit: int = 12) -> str:
    return "".join(traceback.format_exception(exc)[-limit:])


def load_module(path: Path, module_name: str = "archscout_candidate"):
    """Parse, then execute, the candidate file as a fresh module."""
    source = Path(path).read_text()
    try:
        ast.parse(source, filename=str(path))
    except SyntaxError as err:
        raise ContractError(
            FailureKind.syntax, f"syntax error at line {err.lineno}: {err.msg}", _tail(err)
        ) from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as err:
        raise ContractError(
            FailureKind.import_error, f"imports a module that is not installed: {err.name}", _tail(err)
        ) from None
    except Exception as err:  # noqa: BLE001 - any error at import time is the candidate's
        raise ContractError(
            FailureKind.exception, f"error at import time: {type(err).__name__}: {err}", _tail(err)
        ) from None
    return module


def find_mixer_class(module, class_name: str | None = None) -> type[nn.Module]:
    """The class named `class_name` (or DeltaNet), else the file's only nn.Module subclass."""
    names = (class_name,) if class_name else DEFAULT_CLASS_NAMES
    for name in names:
        obj = getattr(module, name, None)
        if inspect.isclass(obj) and issubclass(obj, nn.Module):
            return obj
    if class_name:
        raise ContractError(FailureKind.contract, f"no nn.Module class named '{class_name}' in the file")
    # only classes defined in this file count, not imported building blocks such as nn.Linear
    local = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__
    ]
    if len(local) == 1:
        return local[0]
    if not local:
        raise ContractError(FailureKind.contract, "no nn.Module subclass defined in the file")
    # several classes: the mixer is the one no other local class uses as a building block
    roots = [c for c in local if c.__name__ not in _names_used_by_others(local, c)]
    if len(roots) == 1:
        return roots[0]
    raise ContractError(
        FailureKind.contract,
        "several nn.Module classes and none named DeltaNet: set the class name "
        f"({', '.join(sorted(c.__name__ for c in local))})",
    )


def _names_used_by_others(classes: list[type], target: type) -> set[str]:
    used: set[str] = set()
    for cls in classes:
        if cls is target:
            continue
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if target.__name__ in src:
            used.add(target.__name__)
    return used


def check_signatures(cls: type[nn.Module]) -> None:
    init = inspect.signature(cls.__init__)
    params = init.parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    missing = [
        label
        for label, ok in (
            ("d_model or hidden_size", "d_model" in params or "hidden_size" in params or has_var_kw),
            ("num_heads", "num_heads" in params or has_var_kw),
            ("layer_idx", "layer_idx" in params or has_var_kw),
            ("**kwargs", has_var_kw),
        )
        if not ok
    ]
    if missing:
        raise ContractError(
            FailureKind.contract, f"{cls.__name__}.__init__ is missing: {', '.join(missing)}"
        )
    fwd = inspect.signature(cls.forward).parameters
    names = [n for n in fwd if n != "self"]
    if not names:
        raise ContractError(FailureKind.contract, f"{cls.__name__}.forward takes no hidden_states")
    fwd_var_kw = any(p.kind is p.VAR_KEYWORD for p in fwd.values())
    absent = [a for a in FORWARD_ARGS[1:] if a not in fwd and not fwd_var_kw]
    if absent:
        raise ContractError(
            FailureKind.contract, f"{cls.__name__}.forward is missing: {', '.join(absent)}"
        )


def construct(cls: type[nn.Module], d_model: int, num_heads: int, layer_idx: int, **hints: Any):
    """Build one mixer; both `d_model` and `hidden_size` are passed where accepted."""
    params = inspect.signature(cls.__init__).parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs: dict[str, Any] = {"num_heads": num_heads, "layer_idx": layer_idx}
    if "d_model" in params or has_var_kw:
        kwargs["d_model"] = d_model
    if "hidden_size" in params or ("d_model" not in params and has_var_kw):
        kwargs["hidden_size"] = d_model
    for key, value in hints.items():
        if key in params or has_var_kw:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except Exception as err:  # noqa: BLE001
        raise ContractError(
            FailureKind.init_error, f"{cls.__name__}.__init__ raised {type(err).__name__}: {err}", _tail(err)
        ) from None


def call_mixer(mixer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run forward and return (output [B, L, D], aux_loss or None), checking the contract."""
    try:
        out = mixer(x, attention_mask=None, past_key_values=None, use_cache=False, output_attentions=False)
    except Exception as err:  # noqa: BLE001
        raise ContractError(
            FailureKind.forward_error, f"forward raised {type(err).__name__}: {err}", _tail(err)
        ) from None
    aux = None
    if isinstance(out, (tuple, list)):
        if not out:
            raise ContractError(FailureKind.contract, "forward returned an empty tuple")
        o = out[0]
        if len(out) > 1 and out[1] is not None:
            aux = out[1]
            if not (isinstance(aux, torch.Tensor) and aux.numel() == 1):
                raise ContractError(
                    FailureKind.contract, "forward's second return value must be a scalar aux loss or None"
                )
            aux = aux.reshape(())
    else:
        o = out
    if not isinstance(o, torch.Tensor):
        raise ContractError(FailureKind.contract, f"forward returned {type(o).__name__}, not a tensor")
    if o.shape != x.shape:
        raise ContractError(
            FailureKind.contract, f"forward returned shape {tuple(o.shape)}, expected {tuple(x.shape)}"
        )
    if o.dtype != x.dtype:
        # under autocast a mixer's matmuls legitimately come out in bf16/fp16: hand the residual
        # stream its own dtype back; outside autocast a dtype change is a contract breach
        if not (torch.is_autocast_enabled(x.device.type) and o.is_floating_point()):
            raise ContractError(FailureKind.contract, f"forward returned dtype {o.dtype}, expected {x.dtype}")
        o = o.to(x.dtype)
    return o, aux


def load_mixer_class(path: Path, class_name: str | None = None) -> type[nn.Module]:
    module = load_module(Path(path))
    cls = find_mixer_class(module, class_name)
    check_signatures(cls)
    return cls
