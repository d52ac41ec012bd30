"""The LLM debugger: one repair of a candidate that failed in the sandbox.

`debug_code` gets the failing file, the failure's kind (records.FailureKind), the tail of the log
and the attempt number, and returns a diagnosis and a complete corrected file. The prompt explains
what each failure kind means, because "leak" or "batch_mixing" from a probe says far more to the
model once it knows what the probe measured. Not here: the retry loop (how many rounds, re-checking
and re-training the repaired file, recording each attempt), which the study loop owns; this module
runs no candidate code. LLM errors propagate.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from archscout.agents.planner import Client
from archscout.agents.prompts import render_pair, strip_fence
from archscout.records import FailureKind

MEANINGS: dict[str, str] = {
    "syntax": "The file does not parse as Python.",
    "import_error": "The file imports a module that is not installed; only the standard library, "
    "torch and archscout.space.ops are available.",
    "contract": "The loader found no suitable mixer class, a wrong constructor or forward signature, "
    "or forward returned the wrong type, shape or dtype.",
    "init_error": "The constructor raised an exception.",
    "forward_error": "forward raised an exception on a [B, L, D] input.",
    "nan": "NaN or inf appeared in the output, the loss or the gradients.",
    "leak": "Causality probe before training, or the perturbation checks on the trained weights: "
    "changing inputs after position t changed outputs at or before t. "
    "Something reads the future (a full-sequence sum, mean or norm, symmetric padding, a missing or "
    "wrong intra-chunk mask).",
    "batch_mixing": "Batch-independence probe: a sample's output changed with the other samples in "
    "the batch (statistics or reshapes across the batch dimension).",
    "quadratic": "Complexity probe: FLOPs or time grew about quadratically with sequence length (an "
    "L x L tensor over the whole sequence, or per-position work that grows with L).",
    "param_budget": "The mixer has more parameters than the study's budget allows.",
    "no_grad": "A trainable parameter received no gradient (an unused layer, a detach, or an "
    "integer/boolean path that cuts the graph).",
    "diverged": "Training loss exploded (unbounded state, decay above 1, missing normalisation, a "
    "bad initialisation).",
    "leak_suspect": "Training loss fell far below the baseline's curve, which usually means the "
    "mixer sees future tokens in a way the probe did not excite.",
    "too_slow": "Training steps were many times slower than the baseline's (Python loops over "
    "positions, tiny chunks, repeated large allocations).",
    "timeout": "The run exceeded its time limit.",
    "memory": "The run exceeded its memory limit (large intermediate tensors).",
    "killed": "The run was killed from outside.",
    "crash": "The process died by a signal (e.g. a segmentation fault).",
    "exception": "An uncaught exception outside the classified cases.",
    "invalid_result": "The sandboxed run's result was missing or corrupt (the process exited "
    "without reporting, or wrote to its output channel).",
    "forbidden": "The sandbox caught the candidate opening a file or network connection, which the "
    "contract forbids.",
}


class DebugOut(BaseModel):
    diagnosis: str = Field(min_length=1)
    code: str = Field(min_length=1)

    @field_validator("code")
    @classmethod
    def _unfence(cls, value: str) -> str:
        return strip_fence(value)


def debug_code(
    client: Client,
    code: str,
    failure_kind: FailureKind | str,
    log_tail: str,
    attempt: int,
    *,
    experiment_id: int | None = None,
    architecture_id: int | None = None,
) -> DebugOut:
    """One repair round; `attempt` counts from 1 and tells the model earlier repairs failed."""
    kind = failure_kind.value if isinstance(failure_kind, FailureKind) else str(failure_kind)
    system, user = render_pair(
        "debugger", code=code, failure_kind=kind, log_tail=log_tail or "(no log)", attempt=attempt,
        meaning=MEANINGS.get(kind, "An unclassified failure; read the log."),
    )
    return client.call(
        "debugger", system=system, user=user, schema=DebugOut,
        experiment_id=experiment_id, architecture_id=architecture_id,
    )
