"""One architecture's page data: what `archscout show` says, plus curves, probes and the LLM trace.

Built on summary.architecture (name, motivation, code, diff against the parent, runs, fitness,
analyses) and adds: every run's loss/accuracy curves with the baseline's seed band at the same
preset, the probe reports, the verification verdict with its confidence intervals, children, and
the LLM calls that produced it (db.ledger). Syntax highlighting is rendering (render.py), not data:
the `.json` twin carries the raw code.
"""

from __future__ import annotations

from typing import Any

from archscout.analyze.seedstats import seed_stats
from archscout.store.schema import Stage
from archscout.study import StudyHandle
from archscout.summary import architecture
from archscout.web.data import clean

EXPLORE, VERIFY = Stage.EXPLORE, Stage.VERIFY
MAX_POINTS = 200  # curve points per series sent to the browser; longer curves are thinned


def _thin(points: list) -> list[list[float]]:
    step = max(1, -(-len(points) // MAX_POINTS))
    kept = points[::step]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return [[p.step, p.value] for p in kept]


def _curves(result) -> dict[str, dict[str, Any]]:
    return {
        name: {"kind": task.kind, "train": _thin(task.train_curve), "eval": _thin(task.eval_curve),
               "eval_label": "val loss" if task.kind == "lm" else "test accuracy", "stopped": task.stopped}
        for name, task in result.tasks.items()
    }


def baseline_band(study: StudyHandle, preset: str) -> dict[str, Any]:
    """Mean ± std of the baseline's eval curves per task at `preset`, step by step over its seeds."""
    base = next(iter(study.db.architectures_by_origin("baseline")), None)
    if base is None:
        return {}
    stage = EXPLORE if preset == study.preset.name else VERIFY
    runs = [r.result for r in study.db.runs_for(base.id, stage, preset) if r.status == "ok"]
    out: dict[str, Any] = {}
    for name in sorted({n for r in runs for n in r.tasks}):
        by_step: dict[int, list[float]] = {}
        for r in runs:
            if name in r.tasks:
                for p in r.tasks[name].eval_curve:
                    by_step.setdefault(p.step, []).append(p.value)
        steps = sorted(by_step)
        # one seed measures no noise: its std is unknown (null in the JSON), not a zero-width band
        stats = [seed_stats(by_step[k]) for k in steps]
        out[name] = {"seeds": len(runs), "steps": steps, "mean": [v.mean for v in stats], "std": [v.std for v in stats]}
    return out


def architecture_page(study: StudyHandle, arch_id: int) -> dict[str, Any] | None:
    db = study.db
    data = architecture(study, arch_id)
    if data is None:
        return None
    arch = db.architecture(arch_id)
    runs = db.runs_for(arch_id)
    data["runs"] = [
        {"id": r.id, "stage": r.stage, "preset": r.preset, "seed": r.seed, "status": r.status,
         "failure": r.failure_kind, "val_loss": r.val_loss, "benchmark": r.benchmark, "params": r.params,
         "tokens_per_s": r.tokens_per_s, "wall_s": r.wall_s,
         "message": r.result.failure.message if r.result.failure else "",
         "log_tail": r.result.failure.log_tail if r.result.failure else "",
         "curves": _curves(r.result)}
        for r in runs
    ]
    first = next((r for r in runs if r.result.probes), None)
    data["probes"] = [p.model_dump(mode="json") for p in first.result.probes] if first else []
    data["baseline_band"] = {p: baseline_band(study, p) for p in sorted({r.preset for r in runs})}
    verify_scores = []
    for preset in sorted({r.preset for r in runs if r.stage == VERIFY}):
        score = db.score(arch_id, VERIFY, preset)
        if score is not None:
            verify_scores.append({"preset": preset, "fitness": score.fitness, **score.components})
    data["verification"] = verify_scores
    data["children"] = [{"id": c.id, "name": c.name} for c in db.children_of(arch_id)]
    data["experiment_id"] = arch.experiment_id
    data["created_at"] = arch.created_at
    data["analyses"] = [
        {"kind": a.kind, "text": a.text, "numbers": a.numbers, "created_at": a.created_at,
         "cognition": list((a.numbers or {}).get("cognition") or []) if a.kind == "llm" else []}
        for a in db.analyses_for(arch_id)
    ]
    calls = db.ledger.trace(arch_id, arch.experiment_id)
    data["llm"] = {
        "calls": [c.model_dump(mode="json") for c in calls],
        "cost_usd": sum(c.cost_usd or 0.0 for c in calls),
        "tokens_in": sum(c.tokens_in for c in calls), "tokens_out": sum(c.tokens_out for c in calls),
    }
    return clean(data)
