"""The LLM rubric judge: the paper's architectural-quality term of fitness, on an anchored scale.

The model scores a trained candidate on four dimensions (performance, innovation, complexity,
implementation quality), each 0-10 with a rationale, against fixed anchors: the study's baseline is
5/10 and a stronger reference design 10/10. Anchoring is what makes scores from different
experiments comparable; an unanchored "rate this 1-10" drifts with whatever the model saw last.
`JudgeOut.normalized()` is the mean over the four dimensions divided by 10, the `judge_score`
that `fitness.compute_fitness` takes when `FitnessConfig.judge == "llm"`.

Not here: deciding whether to judge at all, or what to do when the call fails (the caller passes
`judge_score=None` and fitness records the term as missing). No database access; LLM errors
propagate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from archscout.analyze.fitness import BaselineRef
from archscout.agents.planner import Client
from archscout.agents.prompts import render_pair

DIMENSIONS = ("performance", "innovation", "complexity", "implementation_quality")


class Dimension(BaseModel):
    score: float = Field(ge=0, le=10)
    rationale: str = ""


class JudgeOut(BaseModel):
    performance: Dimension
    innovation: Dimension
    complexity: Dimension
    implementation_quality: Dimension

    def scores(self) -> dict[str, float]:
        return {d: getattr(self, d).score for d in DIMENSIONS}

    def normalized(self) -> float:
        """Mean score / 10, in [0, 1]; the baseline's anchor (5/10 everywhere) maps to 0.5, which
        is also where fitness's sigmoid terms put the baseline."""
        return sum(self.scores().values()) / (10.0 * len(DIMENSIONS))


def _get(results: Any, key: str) -> Any:
    return results.get(key) if isinstance(results, Mapping) else getattr(results, key, None)


def result_rows(results: Any, baseline: BaselineRef) -> list[dict[str, Any]]:
    """Candidate against baseline mean for each metric both sides have; `results` is anything with
    val_loss / benchmark / tokens_per_s / params (a RunResult, an ArchView or a dict)."""
    rows = []
    for metric, base, note in (
        ("val_loss", baseline.val_loss_mean, "lower is better"),
        ("benchmark", baseline.benchmark_mean, "higher is better"),
        ("tokens_per_s", baseline.tokens_per_s_mean, "higher is faster"),
        ("params", baseline.params_mean, "fewer is leaner"),
    ):
        value = _get(results, metric)
        if value is None:
            continue
        relative = (value - base) / abs(base) if base else None
        rows.append({"metric": metric, "candidate": value, "baseline": base, "relative": relative, "note": note})
    return rows


def judge(
    client: Client,
    candidate_code: str,
    results: Any,
    baseline: BaselineRef,
    reference_code: str | None = None,
    *,
    experiment_id: int | None = None,
    architecture_id: int | None = None,
) -> JudgeOut:
    """Score one trained candidate. `reference_code` is the stronger design that anchors 10/10
    (e.g. the study's best verified discovery); without it the prompt names a generic one."""
    system, user = render_pair(
        "judge", candidate_code=candidate_code, rows=result_rows(results, baseline),
        baseline=baseline.model_dump(), reference_code=reference_code or "",
    )
    return client.call(
        "judge", system=system, user=user, schema=JudgeOut,
        experiment_id=experiment_id, architecture_id=architecture_id,
    )
