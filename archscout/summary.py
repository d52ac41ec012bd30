"""Plain-data views of a study for `status`, `show` and (later) the dashboard's JSON twins.

Each function reads the database and returns JSON-serialisable dicts; rendering is elsewhere
(ui.py for the terminal). Nothing here writes.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from archscout.analyze.seedstats import seed_stats
from archscout.isolation import summary as isolation_summary
from archscout import quarantine
from archscout.store import claims
from archscout.store.schema import Stage
from archscout.store.views import arch_view
from archscout.study import StudyHandle

EXPLORE = Stage.EXPLORE


def baseline_noise(study: StudyHandle) -> dict[str, Any]:
    """Mean and std of every metric over the baseline's seeds: the study's noise floor."""
    base = next((a for a in _baselines(study)), None)
    if base is None:
        return {}
    runs = [r.result for r in study.db.runs_for(base.id, EXPLORE, study.preset.name) if r.status == "ok"]
    metrics: dict[str, list[float]] = {"val_loss": [], "benchmark": []}
    for r in runs:
        if r.val_loss is not None:
            metrics["val_loss"].append(r.val_loss)
        if r.benchmark is not None:
            metrics["benchmark"].append(r.benchmark)
        for name, task in r.tasks.items():
            value = task.val_loss if task.kind == "lm" else task.accuracy
            if value is not None:
                metrics.setdefault(f"task:{name}", []).append(value)
    out: dict[str, Any] = {"architecture_id": base.id, "name": base.name, "seeds": sorted(r.seed for r in runs)}
    for key, values in metrics.items():
        if values:
            mean, std, n = seed_stats(values)
            # JSON has no NaN: one seed's unknown std is written as null
            out[key] = {"mean": mean, "std": None if math.isnan(std) else std, "n": n}
    return out


def _baselines(study: StudyHandle):
    return study.db.architectures_by_origin("baseline")


def posterior_dict(posts: dict, arch_id: int) -> dict[str, Any] | None:
    """An architecture's posterior fitness (mean, 90 % interval, runs combined) or None."""
    post = posts.get(arch_id)
    return None if post is None else post.as_dict()


def best_architectures(study: StudyHandle, limit: int = 10) -> list[dict[str, Any]]:
    """The best single exploration runs, each with its posterior over all its runs (ladder.py)."""
    from archscout.ladder import study_posteriors

    posts = study_posteriors(study)
    out = []
    for arch_id, fitness in study.db.top_scores(EXPLORE, study.preset.name, limit):
        arch = study.db.architecture(arch_id)
        run = next((r for r in study.db.runs_for(arch_id, EXPLORE, study.preset.name) if r.status == "ok"), None)
        out.append({
            "id": arch.id, "name": arch.name, "origin": arch.origin, "parent_id": arch.parent_id,
            "fitness": fitness, "val_loss": run.val_loss if run else None,
            "benchmark": run.benchmark if run else None,
            "posterior": posterior_dict(posts, arch_id),
        })
    return out


def status(study: StudyHandle) -> dict[str, Any]:
    by_state = study.db.experiments.counts_by_state()
    in_progress = sum(v for k, v in by_state.items() if k not in ("done", "failed"))
    pool = study.db.latest_pool_version()
    return {
        "study": study.config.name,
        "folder": str(study.folder),
        "preset": study.preset.name,
        "budget": study.config.budget,
        "experiments": {
            "total": sum(by_state.values()),
            "done": by_state.get("done", 0),
            "failed": by_state.get("failed", 0),
            "in_progress": in_progress,
            "by_state": by_state,
            "failed_by_reason": study.db.experiments.counts_by_failure(),
        },
        # drivers and their workers, from the experiments' claims (store/claims.py)
        "workers": claims.activity(study.db),
        "baseline": baseline_noise(study),
        "pool": {"version": pool.version, "size": len(pool.members)} if pool else None,
        "best": best_architectures(study),
        "ladder": _ladder(study),
        "quarantine": [
            {"id": q["architecture_id"], "name": study.db.architecture(q["architecture_id"]).name,
             "state": q["state"], "reason": q["reason"]}
            for q in quarantine.entries(study.db)
        ],
        "llm": llm_spend(study),
        "isolation": isolation_summary(study),
    }


def _ladder(study: StudyHandle) -> dict[str, Any] | None:
    """Candidates per rung, promotion batches and the stop reason (None: no ladder, never stopped)."""
    from archscout.ladder import rung_table

    table = rung_table(study)
    if not study.config.ladder.rungs and table["stop"] is None:
        return None
    return table


def llm_spend(study: StudyHandle) -> dict[str, Any] | None:
    """The ledger's totals and spend per agent; None for a study that never called an LLM."""
    totals = study.db.ledger.totals()
    if not totals["calls"]:
        return None
    cfg = study.config.llm
    return {"totals": totals, "by_agent": study.db.ledger.spend_by_agent(),
            "budget_tokens": cfg.budget_tokens, "budget_usd": cfg.budget_usd}


def trace(study: StudyHandle, arch_id: int) -> list[dict[str, Any]]:
    """The LLM calls of the experiment that produced an architecture (its "cognitive trace"), oldest
    first: planner, reviewer, novelty judge, debugger, judge, analyst, summarizer."""
    arch = study.db.architecture(arch_id)
    if arch is None:
        return []
    return [c.model_dump(mode="json") for c in study.db.ledger.trace(arch_id, arch.experiment_id)]


def _quarantine_entry(db, arch_id: int, preset: str) -> dict[str, Any] | None:
    q = quarantine.entry(db, arch_id, preset)
    return {"state": q["state"], "reason": q["reason"], "evidence": q["evidence"]} if q else None


def _posterior_of(study: StudyHandle, arch_id: int) -> dict[str, Any] | None:
    from archscout.ladder import study_posteriors

    return posterior_dict(study_posteriors(study), arch_id)


def architecture(study: StudyHandle, arch_id: int, with_trace: bool = False) -> dict[str, Any] | None:
    db = study.db
    arch = db.architecture(arch_id)
    if arch is None:
        return None
    parent = db.architecture(arch.parent_id) if arch.parent_id else None
    diff = ""
    if parent is not None:
        diff = "\n".join(difflib.unified_diff(
            parent.code.splitlines(), arch.code.splitlines(), f"{parent.name}.py", f"{arch.name}.py", lineterm="",
        ))
    score = db.score(arch_id, EXPLORE, study.preset.name)
    # the stages' view of it (metrics of the exploration run at the study's seed), then what only
    # `show` and the dashboard add
    view = arch_view(db, arch_id, study.preset.name, study.config.explore_seed)
    return {
        **view.model_dump(exclude={"analysis"}),
        "origin": arch.origin,
        "parent": {"id": parent.id, "name": parent.name} if parent else None,
        "diff": diff,
        "runs": [
            {"stage": r.stage, "preset": r.preset, "seed": r.seed, "status": r.status, "failure": r.failure_kind,
             "val_loss": r.val_loss, "benchmark": r.benchmark, "params": r.params, "tokens_per_s": r.tokens_per_s,
             "message": r.result.failure.message if r.result.failure else ""}
            for r in db.runs_for(arch_id)
        ],
        "score": {"fitness": score.fitness, **score.components} if score else None,
        "posterior": _posterior_of(study, arch_id),
        "quarantine": _quarantine_entry(db, arch_id, study.preset.name),
        "analyses": [{"kind": a.kind, "text": a.text, "numbers": a.numbers} for a in db.analyses_for(arch_id)],
        "trace": trace(study, arch_id) if with_trace else None,
    }
