"""What the task generators (lm.py, mqar.py, mad.py) and the dispatch in `__init__` share: the
`TaskData` interface, the errors, the random streams, evaluation helpers and `SyntheticTask`.

Its own module so that the generators import it rather than their package, whose `__init__`
imports them for dispatch (that ran in an import cycle). Callers keep importing these names from
`archscout.evaluate.tasks`, which re-exports them.
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


# generate(rng, num_examples, test) -> (x, y) int64 [num_examples, L]; `test` lets a task prompt
# differently at test time (MAD's fuzzy recall does)
ExampleFn = Callable[[np.random.Generator, int, bool], tuple[np.ndarray, np.ndarray]]


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
