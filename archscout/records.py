"""Typed records passed between the stages of an experiment.

Every record is a pydantic model so that it round-trips through JSON unchanged: the worker child
writes a `RunResult` as JSON, the parent validates it (a forged or corrupt result becomes an
`invalid_result` failure instead of a crash), and the study database stores the same JSON.

This module holds data only; no training, probing or storage logic lives here.
"""

from __future__ import annotations

import hashlib
import platform
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class FailureKind(str, Enum):
    """Why a run failed. The first group comes from loading the candidate, the second from the
    probes, the third from training, the last from the sandbox boundary."""

    syntax = "syntax"  # the file does not parse
    import_error = "import_error"  # imports a module that is not installed
    contract = "contract"  # no mixer class, wrong signature, wrong output type/shape
    init_error = "init_error"  # exception in __init__
    forward_error = "forward_error"  # exception in forward
    nan = "nan"  # NaN/inf in outputs, loss or gradients

    leak = "leak"  # causality probe, or the checks on the trained weights: future tokens change past outputs
    batch_mixing = "batch_mixing"  # a sample's output depends on the rest of the batch
    quadratic = "quadratic"  # forward time grows ~quadratically (only when configured fatal)
    param_budget = "param_budget"  # too many parameters relative to the baseline
    no_grad = "no_grad"  # a trainable parameter receives no gradient (recorded; no longer fatal)
    nondeterministic = "nondeterministic"  # the same input and state give different outputs

    diverged = "diverged"  # monitor: loss exploded
    leak_suspect = "leak_suspect"  # monitor: loss far below the baseline's curve
    too_slow = "too_slow"  # monitor: step time k x the baseline's

    timeout = "timeout"
    memory = "memory"
    killed = "killed"
    crash = "crash"  # died by a signal such as SIGSEGV
    exception = "exception"  # uncaught exception outside the classified cases
    invalid_result = "invalid_result"  # the child's result is missing, forged or corrupt
    forbidden = "forbidden"  # network/filesystem attempt the sandbox detected
    worker_lost = "worker_lost"  # the Ray worker or node running the evaluation died (retries spent)


class Failure(BaseModel):
    kind: FailureKind
    message: str  # one line, shown to the user
    log_tail: str = ""  # the useful end of the traceback / stderr


class ProbeReport(BaseModel):
    name: str
    passed: bool
    reason: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)


class CurvePoint(BaseModel):
    step: int
    value: float


class TaskResult(BaseModel):
    """One proxy task trained from scratch with a fresh backbone around the candidate mixer."""

    name: str
    kind: str  # "lm" or "synthetic"
    steps_done: int
    steps_planned: int
    params: int
    train_curve: list[CurvePoint] = Field(default_factory=list)  # training loss
    eval_curve: list[CurvePoint] = Field(default_factory=list)  # val loss (lm) / test accuracy
    val_loss: float | None = None  # lm only
    # lm only, set by the parent: the held-out loss on associative-recall hits (targets completing a
    # bigram seen earlier in the same sequence, Zoology Sec. 3), on the other targets, and the number
    # of hits. None in runs stored before they were measured.
    ar_hit_loss: float | None = None
    other_loss: float | None = None
    ar_hits: int | None = None
    accuracy: float | None = None  # synthetic only: final test accuracy
    accuracy_auc: float | None = None  # synthetic only: mean accuracy over the eval curve
    tokens_per_s: float = 0.0
    step_time_s: float = 0.0  # median CPU seconds per optimiser step (the too-slow monitor's measure)
    wall_s: float = 0.0
    stopped: str | None = None  # monitor reason when stopped early


class RunResult(BaseModel):
    """Everything one evaluation of one candidate (preset, seed) produced."""

    candidate_hash: str
    candidate_name: str = ""
    class_name: str = ""
    preset: str
    seed: int
    status: str  # "ok" | "failed"
    failure: Failure | None = None
    probes: list[ProbeReport] = Field(default_factory=list)
    tasks: dict[str, TaskResult] = Field(default_factory=dict)
    val_loss: float | None = None  # the LM task's validation loss
    ar_hit_loss: float | None = None  # the LM task's loss on associative-recall hits (TaskResult)
    benchmark: float | None = None  # mean final test accuracy over the synthetic tasks
    params: int | None = None  # mixer parameters of one layer in the LM backbone
    total_params: int | None = None  # whole LM backbone
    tokens_per_s: float | None = None  # LM training throughput
    wall_s: dict[str, float] = Field(default_factory=dict)  # per phase: probe, train, total
    device: str = "cpu"
    isolation: str = ""  # "netns" | "fallback" (set by the sandbox)
    # set by the parent (evaluate/scoring.py), never taken from the child: who computed the scored
    # numbers, how many perturbed copies were compared, CPU seconds the supervisor measured, ...
    trust: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    runtime: dict[str, str] = Field(default_factory=dict)  # kernels (fla X.Y | compat), compile, dtype

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def code_hash(source: str) -> str:
    """Content hash of a candidate's source text (exact; novelty uses a normalised hash)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def runtime_versions() -> dict[str, str]:
    import torch

    from archscout import __version__

    return {
        "archscout": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def failed_result(
    *,
    candidate_hash: str,
    preset: str,
    seed: int,
    kind: FailureKind,
    message: str,
    log_tail: str = "",
    **extra: Any,
) -> RunResult:
    first_line = (message.strip().splitlines() or [""])[0][:500]
    return RunResult(
        candidate_hash=candidate_hash,
        preset=preset,
        seed=seed,
        status="failed",
        failure=Failure(kind=kind, message=first_line, log_tail=log_tail[-4000:]),
        **extra,
    )


class ArchView(BaseModel):
    """One architecture as the stages see it: the proposer's context (parent, references), the
    analysts (candidate, parent, siblings) and the judges. Metrics are those of its exploration run
    at the study's seed; `analysis` is its latest analysis text."""

    id: int
    name: str
    code: str = ""
    motivation: str = ""
    genome: dict[str, Any] | None = None
    fitness: float | None = None
    val_loss: float | None = None
    benchmark: float | None = None
    tokens_per_s: float | None = None
    params: int | None = None
    analysis: str = ""
