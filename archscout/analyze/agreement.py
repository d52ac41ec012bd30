"""Agreement between our measured ranking of imported architectures and the ranking their authors
published (ASI-Arch's figures in `external_results`): Spearman ρ with a bootstrap 95% CI, per preset.

For every preset with successful runs of imported architectures, our figure per architecture is its
mean validation loss over all its ok runs at that preset (any stage). It is compared with their
published final training loss (same direction: lower is better) and with their benchmark average
(higher is better, so ρ is computed against our *negated* loss: positive ρ means agreement either
way). Their own fitness score against their benchmark average is reported beside it, on the same
architectures, as the reference an instrument has to beat. Reads the database; evaluates nothing.
"""

from __future__ import annotations

from typing import Any

from archscout.analyze.stats import rank_fidelity
from archscout.store.external import externals

SOURCE = "asi-arch"


def _ours(db, arch_ids: list[int]) -> dict[str, dict[int, float]]:
    """preset -> architecture id -> mean val loss over its ok runs."""
    by_preset: dict[str, dict[int, list[float]]] = {}
    for arch_id in arch_ids:
        for run in db.runs_for(arch_id):
            if run.status == "ok" and run.val_loss is not None:
                by_preset.setdefault(run.preset, {}).setdefault(arch_id, []).append(run.val_loss)
    return {p: {a: sum(v) / len(v) for a, v in runs.items()} for p, runs in by_preset.items()}


def external_agreement(db, source: str = SOURCE) -> list[dict[str, Any]]:
    """One row per (preset, their metric) with rho, CI, p and n; empty when nothing was imported."""
    refs = {e.architecture_id: e.data for e in externals(db, source)}
    if not refs:
        return []
    theirs = {
        "train_loss_final": {a: d["train_loss_final"] for a, d in refs.items() if d.get("train_loss_final") is not None},
        "benchmark_average": {a: d["benchmark_average"] for a, d in refs.items() if d.get("benchmark_average") is not None},
    }
    score = {a: d["score"] for a, d in refs.items() if d.get("score") is not None}
    rows = []
    for preset, ours in sorted(_ours(db, list(refs)).items()):
        for metric, values in theirs.items():
            # lower loss is better on both sides for the training loss; for the benchmark, negate ours
            mine = ours if metric == "train_loss_final" else {a: -v for a, v in ours.items()}
            fid = rank_fidelity(mine, values)
            their_own = rank_fidelity(score if metric == "benchmark_average" else {a: -v for a, v in score.items()},
                                      {a: values[a] for a in values if a in ours})
            rows.append({
                "source": source, "preset": preset, "ours": "val_loss (mean over ok runs)",
                "theirs": metric, **fid.model_dump(mode="json"),
                "their_score_rho": their_own.rho, "their_score_ci": [their_own.ci_low, their_own.ci_high],
            })
    return rows


def agreement_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        if r["rho"] is None:
            lines.append(f"{r['preset']}: ρ vs {r['source']}'s {r['theirs']}: n/a ({r['reason']})")
            continue
        ci = "" if r["ci_low"] is None else f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        own = "" if r["their_score_rho"] is None else f"; their own fitness score: ρ {r['their_score_rho']:.2f}"
        lines.append(
            f"{r['preset']}: our val loss vs {r['source']}'s published {r['theirs']}: Spearman ρ "
            f"{r['rho']:.2f}{ci} (95% bootstrap CI, n={r['n']}){own}"
        )
    return lines
