"""Exact information-flow probes: causality and batch independence, compared in float64.

Both probes change part of the input and check that outputs which must not depend on that part stay
put, to a tolerance far above float64 rounding and far below any real dependence. A third check comes
first, because both rest on it: the same input twice must give the same output.

  stateful            the unperturbed input run again; a forward that moves (a step counter, a running
                      statistic updated in forward) is stateful: causality and batch independence are
                      then judged with the state reset (each forward on a fresh copy of the same
                      mixer), with the same tolerance, so state can neither fake nor hide a leak; a
                      forward that moves even from the same state is non-deterministic and fails,
                      since no comparison can then show that it is causal

  causality           outputs at positions <= t must not change when inputs after t change
  batch_independence  a sample's output must not change with the rest of the batch (batch of one,
                      other samples replaced, batch permuted)

Each comparison runs in eval mode and again in train mode, because train-time behaviour (batch
statistics, dropout) is what training sees; the global RNG is re-seeded before every forward so that
dropout draws the same masks in the two forwards being compared.

The mixer is run in float64 (parameters converted, default dtype switched so tensors the forward
creates follow) when it can be; a candidate that hard-codes float32 falls back to float32 with a
looser tolerance. What is not covered: dependence on the sequence *length* rather than on content,
leaks through `attention_mask`/`past_key_values` (never passed by the backbone), and dependence that
random Gaussian inputs do not excite.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

from archscout.config import ProbeSpec
from archscout.records import ProbeReport
from archscout.space.contract import call_mixer, construct

# rounding in float32 is ~1e-7 relative; a chunked algorithm may reorder sums, so allow 1e-4
FLOAT32_TOL = 1e-4
# train mode first re-seeds with this before every forward (any fixed value works)
FORWARD_SEED = 1234


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_exact_mixer(
    mixer_cls: type[nn.Module], spec: ProbeSpec, chunk_size: int, seed: int
) -> tuple[nn.Module, torch.dtype]:
    """A fresh mixer in float64, or in float32 when the candidate cannot run in float64.

    Run the exact probes under `default_dtype(dtype)` with the dtype returned here.
    """
    with default_dtype(torch.float64):
        torch.manual_seed(seed)
        try:
            mixer = construct(mixer_cls, spec.d_model, spec.num_heads, layer_idx=0, chunk_size=chunk_size)
            mixer.double()
            x = torch.randn(1, spec.seq_len, spec.d_model)
            with torch.no_grad():
                call_mixer(mixer.eval(), x)
            return mixer, torch.float64
        except Exception:  # noqa: BLE001 - whatever fails in float64 is retried in float32
            pass
    torch.manual_seed(seed)
    mixer = construct(mixer_cls, spec.d_model, spec.num_heads, layer_idx=0, chunk_size=chunk_size)
    return mixer, torch.float32


def tolerance(spec: ProbeSpec, dtype: torch.dtype, reference: torch.Tensor) -> float:
    base = spec.atol if dtype == torch.float64 else max(spec.atol, FLOAT32_TOL)
    finite = reference[reference.isfinite()]
    # rounding noise grows with the outputs' magnitude, so the tolerance does too
    scale = float(finite.abs().max()) if finite.numel() else 1.0
    return base * max(1.0, scale)


def _forward(mixer: nn.Module, x: torch.Tensor, fresh: bool = False) -> torch.Tensor:
    """One no-grad forward; `fresh` runs it on a copy, so state the forward mutates starts the same."""
    if fresh:
        mixer = copy.deepcopy(mixer)
    torch.manual_seed(FORWARD_SEED)
    with torch.no_grad():
        out, _ = call_mixer(mixer, x)
    return out


def _position_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest change per position, [B, T, D] x2 -> [T]; equal NaNs/infs count as unchanged."""
    same = (a == b) | (a.isnan() & b.isnan())
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs().nan_to_num(nan=float("inf")))
    return diff.amax(dim=(0, 2))


def cut_points(seq_len: int, chunk_size: int) -> list[int]:
    """Positions t after which the input is changed: the start, a third in, the end, and both
    sides of the first chunk boundary (where chunked algorithms hand over state)."""
    candidates = (0, seq_len // 3, chunk_size - 1, chunk_size, seq_len - 2)
    return sorted({t for t in candidates if 0 <= t <= seq_len - 2})


def probe_stateful(mixer: nn.Module, spec: ProbeSpec, dtype: torch.dtype, gen: torch.Generator) -> ProbeReport:
    """The same input twice, in eval and train mode: passed when the output is bitwise the same.

    Exact equality, not the leak tolerance: a step counter that moves the output by 1e-6 per call
    accumulates over the many forwards of the causality probe into a "leak" above the tolerance.
    When the output moves, two forwards on fresh copies of the mixer tell a stateful forward (the
    copies agree within the tolerance: `details["state_reset"]`, advisory) from a non-deterministic
    one (fatal).
    """
    x = torch.randn(spec.batch, spec.seq_len, spec.d_model, generator=gen, dtype=dtype)
    details = {"dtype": str(dtype).removeprefix("torch."), "rerun_diff": 0.0}
    for mode in ("eval", "train"):
        mixer.train(mode == "train")
        first = _forward(mixer, x)
        diff = float(_position_diff(_forward(mixer, x), first).max())
        details["rerun_diff"] = max(details["rerun_diff"], diff)
        if diff == 0:
            continue
        tol = tolerance(spec, dtype, first)
        fresh_diff = float(_position_diff(_forward(mixer, x, fresh=True), _forward(mixer, x, fresh=True)).max())
        details.update(mode=mode, tol=tol, fresh_copy_diff=fresh_diff)
        if fresh_diff > tol:
            details["failure_kind"] = "nondeterministic"
            return ProbeReport(
                name="stateful",
                passed=False,
                reason=(
                    f"the same input gives different outputs even from the same state (max diff "
                    f"{fresh_diff:.3g} > tol {tol:.3g}, {mode} mode): causality cannot be verified"
                ),
                details=details,
            )
        details.update(state_reset=True, fatal=False)
        return ProbeReport(
            name="stateful",
            passed=False,
            reason=(
                f"forward changes its own state: the same input twice moves the output by {diff:.3g} "
                f"({mode} mode); causality and batch independence were judged with the state reset"
            ),
            details=details,
        )
    return ProbeReport(name="stateful", passed=True, details=details)


def probe_causality(
    mixer: nn.Module,
    spec: ProbeSpec,
    dtype: torch.dtype,
    chunk_size: int,
    gen: torch.Generator,
    fresh: bool = False,
) -> ProbeReport:
    """Perturb inputs after each cut point t; outputs at positions <= t must not move.

    `fresh` (a stateful forward): every forward starts from the same state (see probe_stateful).
    """
    shape = (spec.batch, spec.seq_len, spec.d_model)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    cuts = cut_points(spec.seq_len, chunk_size)
    details = {"dtype": str(dtype).removeprefix("torch."), "cut_points": cuts, "max_diff": 0.0, "state_reset": fresh}
    for mode in ("eval", "train"):
        mixer.train(mode == "train")
        base = _forward(mixer, x, fresh)
        tol = tolerance(spec, dtype, base)
        details["tol"] = tol
        for t in cuts:
            perturbed = x.clone()
            perturbed[:, t + 1 :] = torch.randn(perturbed[:, t + 1 :].shape, generator=gen, dtype=dtype)
            diff = _position_diff(_forward(mixer, perturbed, fresh)[:, : t + 1], base[:, : t + 1])  # [t+1]
            details["max_diff"] = max(details["max_diff"], float(diff.max()))
            leaking = (diff > tol).nonzero()
            if leaking.numel():
                position = int(leaking[0])
                leak = float(diff[position])
                details.update(mode=mode, cut=t, first_leak_position=position, leak_diff=leak)
                return ProbeReport(
                    name="causality",
                    passed=False,
                    reason=(
                        f"output at position {position} changes when only inputs after position {t} "
                        f"change (max diff {leak:.3g} > tol {tol:.3g}, {mode} mode)"
                    ),
                    details=details,
                )
    return ProbeReport(name="causality", passed=True, details=details)


def probe_batch_independence(
    mixer: nn.Module, spec: ProbeSpec, dtype: torch.dtype, gen: torch.Generator, fresh: bool = False
) -> ProbeReport:
    """Sample 0's output must not depend on which other samples share its batch."""
    batch = max(2, spec.batch)
    x = torch.randn(batch, spec.seq_len, spec.d_model, generator=gen, dtype=dtype)
    others = x.clone()
    others[1:] = torch.randn(others[1:].shape, generator=gen, dtype=dtype)
    perm = torch.roll(torch.arange(batch), 1)  # never the identity
    details = {"dtype": str(dtype).removeprefix("torch."), "batch": batch, "max_diff": 0.0, "state_reset": fresh}
    for mode in ("eval", "train"):
        mixer.train(mode == "train")
        full = _forward(mixer, x, fresh)
        tol = tolerance(spec, dtype, full)
        details["tol"] = tol
        checks = [("other samples replaced", _forward(mixer, others, fresh)[:1], full[:1])]
        # dropout masks depend on the batch shape and order, so these two compare only in eval mode
        if mode == "eval":
            checks.append(("sample alone in a batch of one", _forward(mixer, x[:1], fresh), full[:1]))
            checks.append(("batch permuted", _forward(mixer, x[perm], fresh), full[perm]))
        for label, got, want in checks:
            diff = float(_position_diff(got, want).max())
            details["max_diff"] = max(details["max_diff"], diff)
            if diff > tol:
                details.update(mode=mode, check=label, mixing_diff=diff)
                return ProbeReport(
                    name="batch_independence",
                    passed=False,
                    reason=f"a sample's output changes with the rest of the batch ({label}: "
                    f"max diff {diff:.3g} > tol {tol:.3g}, {mode} mode)",
                    details=details,
                )
    return ProbeReport(name="batch_independence", passed=True, details=details)
