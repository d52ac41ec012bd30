"""Training one candidate on one proxy task, with the run monitor.

AdamW with linear warm-up and cosine decay, gradient clipping, optional bf16 autocast, a fixed step
budget from the preset (never wall time, so a slower candidate still sees the same tokens), and a
monitor that stops a run early with a reason: non-finite loss, loss explosion, loss far below the
baseline's curve at the same step (a leak signal), or steps far slower than the baseline's, judged by
the child's CPU time per step (other work on the machine stretches wall-clock steps, not CPU time).

Runs inside the sandboxed worker only. It does not load candidate files (contract.py does) and does
not decide fitness (analyze/ does).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from archscout.config import MonitorSpec, Preset, TaskSpec
from archscout.evaluate.tasks import build_task
from archscout.records import CurvePoint, FailureKind, TaskResult
from archscout.space.backbone import Backbone

Progress = Callable[[dict], None]


class TaskReference(BaseModel):
    """The baseline's behaviour on a task, used by the monitor (from the study's baseline runs)."""

    train_curve: list[CurvePoint] = Field(default_factory=list)
    step_time_s: float = 0.0


class MonitorStop(Exception):
    def __init__(self, kind: FailureKind, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Monitor:
    spec: MonitorSpec
    reference: TaskReference | None
    warmup_steps: int
    # only language modelling: on a synthetic task a candidate that leaves the recall plateau
    # sooner than the baseline legitimately has a loss far below the baseline's at the same step
    check_leak: bool = True
    initial_loss: float | None = None
    step_times: list[float] = field(default_factory=list)

    def _reference_loss(self, step: int) -> float | None:
        curve = self.reference.train_curve if self.reference else []
        if not curve:
            return None
        # nearest recorded point at or before this step; curves are logged every few steps
        before = [p for p in curve if p.step <= step]
        return (before[-1] if before else curve[0]).value

    def check(self, step: int, loss: float, step_time: float) -> None:
        if not math.isfinite(loss):
            raise MonitorStop(FailureKind.nan, f"non-finite training loss at step {step}")
        if self.initial_loss is None:
            self.initial_loss = loss
        if step > self.warmup_steps and loss > self.spec.explode_ratio * self.initial_loss:
            raise MonitorStop(
                FailureKind.diverged,
                f"loss exploded at step {step}: {loss:.3f} > {self.spec.explode_ratio} x initial {self.initial_loss:.3f}",
            )
        ref = self._reference_loss(step)
        if self.check_leak and ref is not None and step >= self.spec.leak_min_step and loss < self.spec.leak_ratio * ref:
            raise MonitorStop(
                FailureKind.leak_suspect,
                f"loss {loss:.3f} at step {step} is below {self.spec.leak_ratio} x the baseline's {ref:.3f}",
            )
        self.step_times.append(step_time)
        base_time = self.reference.step_time_s if self.reference else 0.0
        if base_time > 0 and len(self.step_times) >= 10:
            median = statistics.median(self.step_times[-10:])
            if median > self.spec.slow_ratio * base_time:
                raise MonitorStop(
                    FailureKind.too_slow,
                    f"median step CPU time {median:.3f}s at step {step} is over {self.spec.slow_ratio} x the "
                    f"baseline's {base_time:.3f}s",
                )


def lr_at(step: int, spec_steps: int, lr: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, spec_steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # no decay on norms, biases, embeddings' siblings of rank < 2 (gains, decay rates, betas)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_task(
    mixer_cls: type[torch.nn.Module],
    spec: TaskSpec,
    preset: Preset,
    seed: int,
    cache_dir: Path,
    device: torch.device,
    reference: TaskReference | None = None,
    progress: Progress | None = None,
    oracle: Callable[[torch.nn.Module, str, int], None] | None = None,
) -> TaskResult:
    """Train a fresh backbone around the mixer on one task; raises MonitorStop on an early stop.

    With `oracle` (the sandboxed worker always passes one) the evaluations are not computed here:
    at each evaluation point the oracle serves the parent's forward requests (evaluate/oracle.py)
    and the parent computes and records the numbers; this function then leaves them empty."""
    data = build_task(spec, seed, cache_dir, heldout=oracle is None)
    torch.manual_seed(seed)
    model = Backbone(mixer_cls, spec.model, data.vocab_size, chunk_size=preset.chunk_size).to(device)
    opt = torch.optim.AdamW(_param_groups(model, spec.optim.weight_decay), lr=spec.optim.lr, betas=(0.9, 0.95))
    monitor = Monitor(preset.monitor, reference, spec.optim.warmup_steps, check_leak=spec.kind == "lm")
    autocast = preset.bf16_autocast
    result = TaskResult(
        name=spec.name,
        kind="lm" if spec.kind == "lm" else "synthetic",
        steps_done=0,
        steps_planned=spec.optim.steps,
        params=model.num_params(),
    )
    eval_values: list[float] = []
    tokens, wall_steps = 0, 0.0
    started = time.perf_counter()
    log_every = max(1, spec.optim.steps // 50)

    def evaluate(step: int) -> None:
        if oracle is not None:
            oracle(model, spec.name, step)
            return
        value = data.evaluate(model)
        eval_values.append(value)
        result.eval_curve.append(CurvePoint(step=step, value=value))
        if progress:
            progress({"task": spec.name, "step": step, "eval": value})

    for step in range(spec.optim.steps):
        t0, cpu0 = time.perf_counter(), time.process_time()
        x, y = (t.to(device) for t in data.train_batch(step))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec.optim.steps, spec.optim.lr, spec.optim.warmup_steps, spec.optim.min_lr_ratio)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            logits, aux = model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
            total = loss + aux.float() if aux is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.optim.grad_clip)
        opt.step()
        loss_value = float(loss.detach())
        wall_steps += time.perf_counter() - t0
        step_cpu = time.process_time() - cpu0  # all of this process's threads
        tokens += x.numel()
        result.steps_done = step + 1
        if step % log_every == 0 or step == spec.optim.steps - 1:
            result.train_curve.append(CurvePoint(step=step, value=loss_value))
            if progress:
                progress({"task": spec.name, "step": step + 1, "steps": spec.optim.steps, "loss": loss_value})
        monitor.check(step, loss_value, step_cpu)
        if (step + 1) % spec.eval_every == 0 and step + 1 < spec.optim.steps:
            evaluate(step + 1)
    evaluate(spec.optim.steps)

    result.wall_s = time.perf_counter() - started
    result.step_time_s = statistics.median(monitor.step_times) if monitor.step_times else 0.0
    result.tokens_per_s = tokens / max(1e-9, wall_steps)  # wall clock: shown, never scored
    if not eval_values:  # scored by the parent through the oracle
        pass
    elif spec.kind == "lm":
        result.val_loss = eval_values[-1]
    else:
        result.accuracy = eval_values[-1]
        # area under the accuracy curve, normalised to [0, 1]: a candidate that learns sooner scores higher
        result.accuracy_auc = sum(eval_values) / len(eval_values)
    if not all(math.isfinite(v) for v in eval_values):
        raise MonitorStop(FailureKind.nan, f"non-finite evaluation result on {spec.name}")
    return result


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)
