"""Study-level page data for the dashboard: overview, leaderboard, trends and failures.

Each function takes an opened study and returns a JSON-ready dict; the HTML page, its `.json` twin
and the static export all render the same dict, so what a page shows and what its twin says cannot
drift apart. Queries read whole columns at once (no query per architecture), because a long study
has thousands of architectures. The lineage tree is in tree.py, one architecture's page in arch.py;
nothing here writes or evaluates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from archscout.analyze.stats import shrinkage
from archscout.ladder import study_posteriors
from archscout.report import scaling_events, verification_rows
from archscout.store import bulk
from archscout.store.schema import Stage
from archscout.study import StudyHandle
from archscout.summary import baseline_noise, status

EXPLORE = Stage.EXPLORE
# score components shown as leaderboard columns (the fitness formula's terms and deltas)
COMPONENTS = ("loss_term", "bench_term", "judge_term", "delta_loss", "delta_bench")


def clean(value: Any) -> Any:
    """`value` with NaN/inf as None and datetimes as ISO text: what JSON.parse and Jinja accept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def verified(study: StudyHandle) -> dict[int, dict[str, Any]]:
    """Verification status per architecture at the study preset: discovery, q and the primary CI."""
    primary = study.config.verify.rule.primary
    out = {}
    for row in verification_rows(study, study.preset.name):
        out[row["id"]] = {
            "discovery": bool(row["discovery"]), "q_value": row["q_value"], "seeds": row["seeds"],
            "reason": row["reason"], "metric": primary, "effect": row.get(f"{primary}_effect"),
            "ci_low": row.get(f"{primary}_ci_low"), "ci_high": row.get(f"{primary}_ci_high"),
        }
    return out


def overview(study: StudyHandle) -> dict[str, Any]:
    db = study.db
    data = status(study)
    ver = verified(study)
    names = bulk.names(db, list(ver))
    data["verification"] = [
        {"id": a, "name": names.get(a, f"#{a}"), **v} for a, v in sorted(ver.items(), key=lambda kv: not kv[1]["discovery"])
    ]
    data["discoveries"] = sum(v["discovery"] for v in ver.values())
    data["config"] = study.config.model_dump(mode="json", exclude_none=True)
    data["llm"] = {"totals": db.ledger.totals(), "by_agent": db.ledger.spend_by_agent()}
    runs = db.counts()
    compute_s = bulk.compute_seconds(db)
    data["spend"] = {"runs": runs["runs"], "runs_ok": runs["runs_ok"], "runs_failed": runs["runs_failed"],
                     "compute_h": compute_s / 3600}
    data["recent"] = [
        {"seq": e.seq, "state": e.state, "architecture_id": e.architecture_id, "parent_id": e.parent_id,
         "failure_reason": e.failure_reason, "proposer": e.proposer, "updated_at": e.updated_at}
        for e in db.experiments.recent(10)
    ]
    return clean(data)


def posteriors(study: StudyHandle) -> dict[int, dict[str, Any]]:
    """Each candidate's posterior fitness, trimmed to what a page shows (mean, 90 % interval, runs):
    the tree and the trends carry one per node, thousands in a long study."""
    return {a: {"mean": p.mean, "lo": p.lo, "hi": p.hi, "n": p.n} for a, p in study_posteriors(study).items()}


def explore_scores(study: StudyHandle) -> dict[int, tuple[float, dict[str, Any]]]:
    return bulk.scores(study.db, EXPLORE, study.preset.name)


def leaderboard(study: StudyHandle) -> dict[str, Any]:
    """Every scored architecture at the study preset, best fitness first."""
    archs = bulk.nodes(study.db)
    scores = explore_scores(study)
    metrics = bulk.first_run_metrics(study.db, EXPLORE, study.preset.name)
    ver = verified(study)
    posts = study_posteriors(study)
    rows = []
    for a in archs:
        if a.id not in scores:
            continue
        fitness, comp = scores[a.id]
        rows.append({
            "id": a.id, "name": a.name, "origin": a.origin, "parent_id": a.parent_id, "fitness": fitness,
            **{k: comp.get(k) for k in COMPONENTS},
            **metrics.get(a.id, {"val_loss": None, "benchmark": None, "params": None, "tokens_per_s": None}),
            "verified": ver.get(a.id),
            "posterior": posts[a.id].as_dict() if a.id in posts else None,
        })
    rows.sort(key=lambda r: (-(r["fitness"] if r["fitness"] is not None else -math.inf), r["id"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return clean({"preset": study.preset.name, "components": list(COMPONENTS), "rows": rows})


def trends(study: StudyHandle) -> dict[str, Any]:
    """Fitness (with each point's posterior), loss and benchmark per experiment with the baseline
    band; scaling and shrinkage."""
    exps = bulk.experiment_points(study.db)
    scores = explore_scores(study)
    metrics = bulk.first_run_metrics(study.db, EXPLORE, study.preset.name)
    names = bulk.names(study.db, [x.architecture_id for x in exps])
    posts = posteriors(study)
    points = []
    for x in exps:
        m = metrics.get(x.architecture_id, {})
        score = scores.get(x.architecture_id)
        points.append({"seq": x.seq, "id": x.architecture_id, "name": names.get(x.architecture_id, ""), "state": x.state,
                       "fitness": score[0] if score else None, "val_loss": m.get("val_loss"),
                       "benchmark": m.get("benchmark"), "posterior": posts.get(x.architecture_id)})
    noise = baseline_noise(study)
    base_fit = scores.get(noise.get("architecture_id"))
    band = {k: noise[k] for k in ("val_loss", "benchmark") if k in noise}
    rows = verification_rows(study, study.preset.name)
    shrink = shrinkage(
        {r["id"]: r["explore_delta"] for r in rows if r["explore_delta"] is not None},
        {r["id"]: r["verify_delta"] for r in rows if r["verify_delta"] is not None},
    )
    discoveries = {r["id"] for r in rows if r["discovery"]}
    curve = [
        {k: row[k] for k in ("cumulative_compute_h", "cumulative_single_run_improvements", "cumulative_verified_discoveries")}
        for row in scaling_events(study, discoveries)
    ]
    return clean({
        "points": points, "baseline": band, "baseline_fitness": base_fit[0] if base_fit else None,
        "scaling": curve, "shrinkage": shrink.model_dump(mode="python"),
    })


def failures(study: StudyHandle) -> dict[str, Any]:
    """Failed experiments grouped by reason, each with its message and the failed run's log tail."""
    failed = bulk.failed_experiments(study.db)
    arch_ids = [f.architecture_id for f in failed if f.architecture_id is not None]
    tails = bulk.failure_log_tails(study.db, arch_ids)
    names = bulk.names(study.db, arch_ids)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in failed:
        groups[f.reason or "unknown"].append({
            "seq": f.seq, "architecture_id": f.architecture_id, "name": names.get(f.architecture_id),
            "message": f.message or "", "log_tail": tails.get(f.architecture_id, ""), "at": f.finished_at,
        })
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return clean({"total": len(failed), "groups": [{"reason": k, "count": len(v), "items": v} for k, v in ordered]})
