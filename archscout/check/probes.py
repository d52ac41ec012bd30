"""Fast probes run on a candidate mixer before any training, and the failure they imply.

`run_probes` constructs the mixer and returns one `ProbeReport` per probe, in this order:

  contract            signatures; forward on float32 [B, L, D] returns [B, L, D] float32 and a scalar
                      aux loss or None
  finite              no NaN/inf in the output or the aux loss
  stateful            the same input twice gives the same output; advisory when the forward only
                      mutates its own state (the exact probes then reset it), fatal when it is
                      non-deterministic even from the same state (exact.py)
  causality           outputs at positions <= t do not change when inputs after t change (exact.py)
  batch_independence  a sample's output does not depend on the rest of the batch (exact.py)
  gradients           every trainable parameter receives a gradient; advisory: a parameter forward
                      never uses cannot improve a score (it only adds to the parameter count, which
                      the budget already charges), and ASI-Arch's trainer accepted such files
  finite_grad         and that gradient is finite
  param_budget        at most `param_ratio` x the baseline's parameters (always reports the count)
  complexity          forward FLOPs and forward time at 4L over those at L (linear ~4, quadratic
                      ~16); flagged when either ratio passes `quadratic_ratio`, fatal only when
                      `quadratic_fatal` is set, because softmax attention is a legitimate reference

It runs inside the sandboxed worker (it executes candidate code) and never raises for the
candidate's fault: a construction or forward error becomes a failed report whose
`details["failure_kind"]` says what went wrong. `first_fatal` turns the reports into the run's
`FailureKind`. Probes are deterministic (fixed seeds, the caller's RNG state restored afterwards)
except for the timings; the complexity probe's FLOP counts are exact. They run on CPU at the
ProbeSpec's small sizes; they do not cover the `attention_mask`/cache paths, training dynamics (the
monitor's job) or GPU kernels.
"""

from __future__ import annotations

import math
import time
import traceback

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archscout.check.exact import (
    build_exact_mixer,
    default_dtype,
    probe_batch_independence,
    probe_causality,
    probe_stateful,
)
from archscout.config import ProbeSpec
from archscout.records import FailureKind, ProbeReport
from archscout.space.contract import ContractError, call_mixer, check_signatures, construct

PROBE_SEED = 0
PROBE_KINDS = {
    "contract": FailureKind.contract,
    "finite": FailureKind.nan,
    "stateful": FailureKind.nondeterministic,
    "causality": FailureKind.leak,
    "batch_independence": FailureKind.batch_mixing,
    "gradients": FailureKind.no_grad,
    "finite_grad": FailureKind.nan,
    "param_budget": FailureKind.param_budget,
    "complexity": FailureKind.quadratic,
}
PROBE_ORDER = tuple(PROBE_KINDS)

# timing: the minimum over repeats is the least noisy estimate on a shared machine
MIN_REPEATS = 3
MAX_REPEATS = 10
REPEAT_BUDGET_S = 0.3  # keep repeating fast forwards (up to MAX_REPEATS) until this much time is spent
MAX_FORWARD_S = 4.0  # a batch-1 forward at 4L slower than this is flagged without further waiting


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """q @ k^T and p @ v over the full L x L scores, as torch counts its CUDA attention kernels.

    The causal mask is not discounted: masked blocks are skipped by the fused kernel, but the L^2
    growth is the same either way, and the math path does materialise every score.
    """
    *batch_heads, s_q, d_qk = query_shape
    s_k, d_v = key_shape[-2], value_shape[-1]
    return 2 * math.prod(batch_heads) * s_q * s_k * (d_qk + d_v)


# torch's FLOP registry covers the CUDA attention kernels only: on CPU, F.scaled_dot_product_attention
# dispatches to this fused op, which FlopCounterMode would otherwise count as 0 FLOPs (torch 2.13),
# hiding exactly the quadratic term the probe looks for. SDPA's math backend decomposes into bmm,
# which is counted without help (the same total as this formula).
CPU_SDPA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


def run_probes(
    mixer_cls: type[nn.Module],
    spec: ProbeSpec,
    chunk_size: int = 32,
    baseline_params: int | None = None,
) -> list[ProbeReport]:
    """Construct the mixer and run every probe; a failed contract stops the rest."""
    threads = torch.get_num_threads()
    # the probes' tensors are tiny, and with two threads on a two-core machine that runs anything
    # else, intra-op barriers wait for descheduled threads: a 0.2 ms forward then takes 10 ms and
    # the complexity timings measure the machine's load, not the mixer's cost
    torch.set_num_threads(1)
    try:
        return _run_probes(mixer_cls, spec, chunk_size, baseline_params)
    finally:
        torch.set_num_threads(threads)


def _run_probes(
    mixer_cls: type[nn.Module], spec: ProbeSpec, chunk_size: int, baseline_params: int | None
) -> list[ProbeReport]:
    reports: list[ProbeReport] = []
    # the probes seed the global RNG; the caller's training seed must not see that
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PROBE_SEED)
        start = time.perf_counter()
        try:
            check_signatures(mixer_cls)
            mixer = construct(mixer_cls, spec.d_model, spec.num_heads, layer_idx=0, chunk_size=chunk_size)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the candidate's fault, reported
            return [_failure_report("contract", err, time.perf_counter() - start, FailureKind.init_error)]
        reports += _guarded("contract", probe_contract, mixer, spec, _generator())
        if not reports[-1].passed:
            return reports
        reports += _guarded("finite", probe_finite, mixer, spec, _generator())
        reports += _guarded("gradients", probe_gradients, mixer, spec, _generator())
        reports += _guarded("param_budget", probe_param_budget, mixer, spec, baseline_params)
        reports += _guarded("complexity", probe_complexity, mixer, spec, _generator())
        reports += _exact_probes(mixer_cls, spec, chunk_size)
    return sorted(reports, key=lambda r: PROBE_ORDER.index(r.name))


def first_fatal(reports: list[ProbeReport]) -> tuple[FailureKind, str] | None:
    """The failure of the first failed fatal probe, as (kind, one-line message), or None."""
    for report in reports:
        # a probe marks itself advisory with fatal=False (complexity unless quadratic_fatal)
        if report.passed or report.details.get("fatal") is False:
            continue
        kind = report.details.get("failure_kind")
        kind = FailureKind(kind) if kind else PROBE_KINDS.get(report.name, FailureKind.exception)
        return kind, f"{report.name} probe: {report.reason}"
    return None


def fatal_log_tail(reports: list[ProbeReport]) -> str:
    """The traceback of the first failed fatal probe (empty when it raised nothing), for the run's log."""
    for report in reports:
        if not report.passed and report.details.get("fatal") is not False:
            return report.details.get("log_tail", "")
    return ""


def probe_contract(mixer: nn.Module, spec: ProbeSpec, gen: torch.Generator) -> ProbeReport:
    """One train-mode float32 forward; call_mixer raises ContractError for a wrong output."""
    mixer.train()
    x = torch.randn(spec.batch, spec.seq_len, spec.d_model, generator=gen)
    out, aux = call_mixer(mixer, x)
    return ProbeReport(
        name="contract",
        passed=True,
        details={"output_shape": list(out.shape), "aux_loss": aux is not None},
    )


def probe_finite(mixer: nn.Module, spec: ProbeSpec, gen: torch.Generator) -> ProbeReport:
    mixer.train()
    x = torch.randn(spec.batch, spec.seq_len, spec.d_model, generator=gen)
    with torch.no_grad():
        out, aux = call_mixer(mixer, x)
    bad = int((~out.isfinite()).sum())
    details = {"nonfinite_outputs": bad, "output_abs_max": float(out.abs().nan_to_num(0.0, 0.0, 0.0).max())}
    if bad:
        where = (~out.isfinite()).nonzero()[0].tolist()
        return ProbeReport(
            name="finite",
            passed=False,
            reason=f"{bad} of {out.numel()} outputs are NaN/inf (first at [batch, pos, dim] = {where})",
            details=details,
        )
    if aux is not None and not bool(aux.isfinite()):
        return ProbeReport(name="finite", passed=False, reason=f"aux loss is {float(aux)}", details=details)
    return ProbeReport(name="finite", passed=True, details=details)


def probe_gradients(mixer: nn.Module, spec: ProbeSpec, gen: torch.Generator) -> list[ProbeReport]:
    """Backward a random projection of the output (+ aux loss); reports gradients and finite_grad.

    A random projection, not out.sum(), so that a parameter feeding a zero-mean path still gets a
    non-zero gradient; a parameter whose grad stays None is never used by forward.
    """
    mixer.train()
    mixer.zero_grad(set_to_none=True)
    x = torch.randn(spec.batch, spec.seq_len, spec.d_model, generator=gen)
    weights = torch.randn(x.shape, generator=gen)
    out, aux = call_mixer(mixer, x)
    loss = (out * weights).sum() / out.numel() ** 0.5
    if aux is not None:
        loss = loss + aux
    try:
        loss.backward()
    except Exception as err:  # noqa: BLE001
        raise ContractError(
            FailureKind.forward_error, f"backward raised {type(err).__name__}: {err}", _tail(err)
        ) from None
    trainable = [(n, p) for n, p in mixer.named_parameters() if p.requires_grad]
    unused = [n for n, p in trainable if p.grad is None]
    unused_numel = sum(p.numel() for n, p in trainable if p.grad is None)
    nonfinite = [n for n, p in trainable if p.grad is not None and not bool(p.grad.isfinite().all())]
    zero = [n for n, p in trainable if p.grad is not None and not bool(p.grad.any())]
    mixer.zero_grad(set_to_none=True)
    # all-zero gradients are legitimate at some initialisations (e.g. a zero-initialised gate), so
    # they are reported but do not fail
    unused_reason = f"parameters never receive a gradient (unused in forward): {', '.join(unused)}"
    gradients = ProbeReport(
        name="gradients",
        passed=not unused,
        reason=unused_reason if unused else "",
        details={"trainable": len(trainable), "unused": unused, "unused_params": unused_numel, "zero_grad": zero,
                 "fatal": False},
    )
    finite_grad = ProbeReport(
        name="finite_grad",
        passed=not nonfinite,
        reason=f"NaN/inf gradients in: {', '.join(nonfinite)}" if nonfinite else "",
        details={"nonfinite": nonfinite},
    )
    return [gradients, finite_grad]


def count_params(mixer: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters); shared tensors counted once."""
    params = list(mixer.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def probe_param_budget(mixer: nn.Module, spec: ProbeSpec, baseline_params: int | None) -> ProbeReport:
    total, trainable = count_params(mixer)
    details = {"params": total, "trainable": trainable, "baseline_params": baseline_params}
    if not baseline_params:
        return ProbeReport(name="param_budget", passed=True, details=details)
    ratio = total / baseline_params
    details.update(ratio=round(ratio, 3), max_ratio=spec.param_ratio)
    if ratio > spec.param_ratio:
        return ProbeReport(
            name="param_budget",
            passed=False,
            reason=f"{total} parameters is {ratio:.2f}x the baseline's {baseline_params} "
            f"(limit {spec.param_ratio}x)",
            details=details,
        )
    return ProbeReport(name="param_budget", passed=True, details=details)


def _time_forward(mixer: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one no-grad forward."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        call_mixer(mixer, x)
    return time.perf_counter() - wall, time.process_time() - cpu


def _best_times(mixer: nn.Module, short: torch.Tensor, long: torch.Tensor) -> tuple[float, float]:
    """Minimum CPU seconds at each length over interleaved rounds.

    Interleaving puts both lengths in the same stretch of machine load; CPU time leaves out the
    slices the process spends descheduled while another job runs.
    """
    shorts: list[float] = []
    longs: list[float] = []

    def more() -> bool:
        return len(shorts) < MAX_REPEATS and sum(shorts) + sum(longs) < REPEAT_BUDGET_S

    while len(shorts) < MIN_REPEATS or more():
        shorts.append(_time_forward(mixer, short)[1])
        longs.append(_time_forward(mixer, long)[1])
    return min(shorts), min(longs)


def _count_flops(mixer: nn.Module, x: torch.Tensor) -> int:
    """Matmul/conv/attention FLOPs of one no-grad forward, as dispatched (elementwise ops count 0)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as counter:
        call_mixer(mixer, x)
    return counter.get_total_flops()


def probe_complexity(mixer: nn.Module, spec: ProbeSpec, gen: torch.Generator) -> ProbeReport:
    """Count FLOPs and time a batch-1 forward at L and 4L (float32, no grad, eval mode, one thread).

    The two measures cover each other's blind spots: FLOPs see a matmul or attention L^2 term
    exactly, where on CPU its time at L=256 is still hidden behind the linear projections' and
    Python's overhead; time sees a quadratic Python loop or elementwise work, which has no FLOPs.
    """
    mixer.eval()
    length = spec.complexity_len
    short = torch.randn(1, length, spec.d_model, generator=gen)
    long = torch.randn(1, 4 * length, spec.d_model, generator=gen)
    details = {
        "len": length,
        "long_len": 4 * length,
        "max_ratio": spec.quadratic_ratio,
        "fatal": spec.quadratic_fatal,
        "timer": "min process CPU time, 1 thread",
    }

    def flagged(reason: str) -> ProbeReport:
        return ProbeReport(name="complexity", passed=False, reason=reason, details=details)

    _time_forward(mixer, short)  # warm-up: lazy initialisation, allocator
    wall_short, _ = _time_forward(mixer, short)
    # even a linear mixer takes ~4x as long at 4L: past the guard, do not wait for it
    if 4 * wall_short > MAX_FORWARD_S:
        details["short_wall_ms"] = round(wall_short * 1e3, 3)
        return flagged(
            f"forward at L={length} took {wall_short:.2f}s; at 4L it would exceed {MAX_FORWARD_S}s"
        )
    wall_long, _ = _time_forward(mixer, long)  # also the warm-up at 4L
    if wall_long > MAX_FORWARD_S:
        details.update(short_wall_ms=round(wall_short * 1e3, 3), long_wall_ms=round(wall_long * 1e3, 3))
        return flagged(f"forward at 4L={4 * length} took {wall_long:.2f}s (limit {MAX_FORWARD_S}s)")
    t_short, t_long = _best_times(mixer, short, long)
    if t_long / max(t_short, 1e-9) > spec.quadratic_ratio:
        # one busy moment on a shared machine can still skew a timing; confirm before flagging
        again_short, again_long = _best_times(mixer, short, long)
        t_short, t_long = min(t_short, again_short), min(t_long, again_long)
        details["remeasured"] = True
    time_ratio = t_long / max(t_short, 1e-9)
    details.update(short_ms=round(t_short * 1e3, 3), long_ms=round(t_long * 1e3, 3))
    details["time_ratio"] = round(time_ratio, 2)
    # FLOPs at L and 4L are always counted: fitness scores FLOPs per token instead of wall-clock
    # throughput, and the ratio is exact, so a matmul/attention L^2 term is flagged whatever the
    # machine's load does to the timing (gated on time, softmax attention's 4.3x time ratio on a
    # loaded CI machine hid its 12x FLOP ratio). The counter's first use costs ~2 s of CPU.
    flop_ratio = None
    try:
        flops_short = _count_flops(mixer, short)
        details.update(short_flops=flops_short, flops_per_token=flops_short / length)
        flops_long = _count_flops(mixer, long)
        details["long_flops"] = flops_long
        if flops_short:
            flop_ratio = flops_long / flops_short
    except Exception as err:  # noqa: BLE001 - a counter that cannot follow the forward leaves it to timing
        details["flop_error"] = f"{type(err).__name__}: {err}"
    details["flop_ratio"] = None if flop_ratio is None else round(flop_ratio, 2)
    flop_flagged = flop_ratio is not None and flop_ratio > spec.quadratic_ratio
    if flop_flagged or time_ratio > spec.quadratic_ratio:
        flops = "not counted" if flop_ratio is None else f"{flop_ratio:.1f}x"
        return flagged(
            f"from L={length} to 4L forward FLOPs grow {flops} and time {time_ratio:.1f}x (linear ~4x, "
            f"quadratic ~16x; limit {spec.quadratic_ratio}x)"
        )
    return ProbeReport(name="complexity", passed=True, details=details)


def _exact_probes(mixer_cls: type[nn.Module], spec: ProbeSpec, chunk_size: int) -> list[ProbeReport]:
    start = time.perf_counter()
    try:
        mixer, dtype = build_exact_mixer(mixer_cls, spec, chunk_size, PROBE_SEED)
    except (Exception, SystemExit) as err:  # noqa: BLE001
        return [_failure_report("causality", err, time.perf_counter() - start)]
    with default_dtype(dtype):
        stateful = _guarded("stateful", probe_stateful, mixer, spec, dtype, _generator())
        if stateful[0].details.get("failure_kind") == FailureKind.nondeterministic.value:
            return stateful  # no comparison of two forwards can be trusted
        fresh = bool(stateful[0].details.get("state_reset"))
        causality = _guarded("causality", probe_causality, mixer, spec, dtype, chunk_size, _generator(), fresh)
        batch = _guarded("batch_independence", probe_batch_independence, mixer, spec, dtype, _generator(), fresh)
    return stateful + causality + batch


def _generator() -> torch.Generator:
    # each probe draws its inputs from its own generator, so they do not depend on probe order or
    # on how much randomness the candidate consumes
    return torch.Generator().manual_seed(PROBE_SEED)


def _guarded(name: str, probe, *args) -> list[ProbeReport]:
    """Run one probe; any exception becomes a failed report named `name`."""
    start = time.perf_counter()
    try:
        result = probe(*args)
        reports = result if isinstance(result, list) else [result]
    except (Exception, SystemExit) as err:  # noqa: BLE001 - candidate code may raise anything
        reports = [_failure_report(name, err, 0.0)]
    # a probe that returns several reports did one piece of work: its first report carries the time
    reports[0].seconds = round(time.perf_counter() - start, 4)
    return reports


def _failure_report(
    name: str, err: BaseException, seconds: float, kind: FailureKind = FailureKind.forward_error
) -> ProbeReport:
    """A failed report for an exception; `kind` classifies anything that is not a ContractError."""
    if isinstance(err, ContractError):
        kind, message, tail = err.kind, err.message, err.log_tail
    else:
        message, tail = f"{type(err).__name__}: {err}", _tail(err)
    return ProbeReport(
        name=name,
        passed=False,
        reason=message,
        seconds=round(seconds, 4),
        details={"failure_kind": kind.value, "log_tail": tail[-2000:]},
    )


def _tail(err: BaseException, limit: int = 12) -> str:
    return "".join(traceback.format_exception(err)[-limit:])
