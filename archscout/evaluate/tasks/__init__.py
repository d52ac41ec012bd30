"""Data for the proxy tasks: the interface the training loop calls, and dispatch on `TaskSpec.kind`.

Two sides use this module. The parent calls `prepare(spec, cache_dir)` once per task before any
worker starts (slow the first time for language modelling: it trains and caches a tokenizer and the
token arrays; a no-op for the synthetic tasks). Each sandboxed child calls `build_task(spec, seed,
cache_dir)`, which only reads the cache, and then asks the returned `TaskData` for training batches
and for its evaluation metric.

Everything is deterministic given (seed, step): a run can be resumed or repeated, and two candidates
trained with the same seed see the same batches. Held-out data never depends on the step; for
language modelling it does not depend on the seed either, so every candidate is scored on the same
tokens.

Generators live in `lm.py` (text corpora), `mqar.py` (Zoology's multi-query associative recall) and
`mad.py` (the MAD suite's selective copying, noisy recall and fuzzy recall). This module holds no
model code: `evaluate` only runs a given model forward.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from archscout.config import TaskSpec

IGNORE = -100  # target value of positions that are not scored (torch's cross-entropy default)
EVAL_BATCH = 64  # most sequences per forward pass during evaluation

# Stream tags mixed into the seed so training batches and the test set never share random numbers.
_TRAIN_STREAM = 0
_TEST_STREAM = 1


class TaskData(Protocol):
    vocab_size: int

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L] int64 inputs, y [B, L] int64 targets (IGNORE where not scored)."""
        ...

    def evaluate(self, model) -> float:
        """LM: mean held-out cross-entropy (nats/token). Synthetic: accuracy on the fixed test set."""
        ...


class TaskDataError(ValueError):
    """A task cannot be built from its spec (bad parameters, unreadable corpus); names the cause."""


class TaskNotPrepared(RuntimeError):
    """`build_task` found no cached data: `prepare` was not run for this spec and cache folder."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARCHSCOUT_CACHE") or Path.home() / ".cache" / "archscout")


def prepare(spec: TaskSpec, cache_dir: Path) -> None:
    """Parent-side, idempotent: build whatever `build_task` will read. Safe to call concurrently."""
    if spec.kind == "lm":
        from archscout.evaluate.tasks import lm

        lm.prepare(spec, Path(cache_dir))
    else:
        # synthetic tasks generate everything from the seed; still validate early, in the parent
        _synthetic_generator(spec)


def build_task(spec: TaskSpec, seed: int, cache_dir: Path, heldout: bool = True) -> TaskData:
    """Child-side: the task's data for one seed. Never writes to `cache_dir`. `heldout=False`: the
    LM task does not read its held-out split (the sandboxed child, scored by the parent, must not)."""
    if seed < 0:
        raise TaskDataError(f"task '{spec.name}': seed must be >= 0, got {seed}")
    if spec.kind == "lm":
        from archscout.evaluate.tasks import lm

        return lm.LMTask(spec, seed, Path(cache_dir), heldout=heldout)
    generate, num_values = _synthetic_generator(spec)
    return SyntheticTask(spec, seed, generate, num_values)


# generate(rng, num_examples, test) -> (x, y) int64 [num_examples, L]; `test` lets a task prompt
# differently at test time (MAD's fuzzy recall does)
ExampleFn = Callable[[np.random.Generator, int, bool], tuple[np.ndarray, np.ndarray]]


def _synthetic_generator(spec: TaskSpec) -> tuple[ExampleFn, int]:
    """(generator, number of distinct answer tokens) for a synthetic spec; raises on bad params."""
    if spec.kind == "mqar":
        from archscout.evaluate.tasks import mqar

        return mqar.make_generator(spec)
    from archscout.evaluate.tasks import mad

    makers = {
        "selective_copy": mad.selective_copy_generator,
        "noisy_recall": mad.noisy_recall_generator,
        "fuzzy_recall": mad.fuzzy_recall_generator,
    }
    if spec.kind not in makers:
        raise TaskDataError(f"task '{spec.name}': unknown kind '{spec.kind}'")
    return makers[spec.kind](spec)


def train_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TRAIN_STREAM, step])


def heldout_rng(seed: int) -> np.random.Generator:
    # same entropy length as train_rng: SeedSequence does not promise distinct streams otherwise
    return np.random.default_rng([seed, _TEST_STREAM, 0])


def model_device(model) -> torch.device:
    # a parameter-free model (tests, oracles) runs on the CPU
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return param.device if param is not None else torch.device("cpu")


def forward_logits(model, x: torch.Tensor) -> torch.Tensor:
    """Logits [B, L, V] in float32 from a model that returns (logits, aux) or bare logits."""
    out = model(x)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    return logits.float()


def run_eval(model, fn: Callable[[], float]) -> float:
    """Run `fn` with the model in eval mode and gradients off; restore the model's mode after."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            return fn()
    finally:
        if hasattr(model, "train"):
            model.train(was_training)


class SyntheticTask:
    """A synthetic task: fresh batches from (seed, step), a fixed test set from (seed), accuracy."""

    def __init__(self, spec: TaskSpec, seed: int, generate: ExampleFn, num_values: int):
        self.spec = spec
        self.seed = seed
        self.vocab_size = spec.vocab_size
        self.batch_size = spec.optim.batch_size
        self.num_values = num_values  # chance accuracy is about 1 / num_values
        self._generate = generate
        x, y = generate(heldout_rng(seed), spec.test_examples, True)
        self.test_x = torch.from_numpy(x)  # [N, L]
        self.test_y = torch.from_numpy(y)  # [N, L]

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._generate(train_rng(self.seed, step), self.batch_size, False)
        return torch.from_numpy(x), torch.from_numpy(y)

    def evaluate(self, model) -> float:
        return run_eval(model, lambda: self._accuracy(model))

    def _accuracy(self, model) -> float:
        device = model_device(model)
        correct = scored = 0
        for i in range(0, len(self.test_x), EVAL_BATCH):
            x = self.test_x[i : i + EVAL_BATCH].to(device)
            y = self.test_y[i : i + EVAL_BATCH].to(device)
            mask = y != IGNORE
            pred = forward_logits(model, x).argmax(dim=-1)  # [B, L]
            correct += int((pred[mask] == y[mask]).sum())
            scored += int(mask.sum())
        # micro-average over scored positions, as Zoology and MAD report it
        return correct / max(scored, 1)


def lm_loss_sum(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """Summed next-token cross-entropy (nats) of one evaluation batch."""
    logits = forward_logits(model, x)  # [B, L, V]
    return float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"))
