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
`mad.py` (the MAD suite's selective copying, noisy recall and fuzzy recall); what they share (the
`TaskData` interface, random streams, `SyntheticTask`, evaluation helpers) is in `common.py`, re-exported
here. This package holds no model code: `evaluate` only runs a given model forward.
"""

from __future__ import annotations

from pathlib import Path

from archscout.config import TaskSpec
from archscout.evaluate.tasks.common import (  # noqa: F401 - re-exported: callers import them from here
    EVAL_BATCH,
    IGNORE,
    ExampleFn,
    SyntheticTask,
    TaskData,
    TaskDataError,
    TaskNotPrepared,
    default_cache_dir,
    forward_logits,
    heldout_rng,
    lm_loss_sum,
    model_device,
    run_eval,
    train_rng,
)


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
