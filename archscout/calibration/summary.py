"""Summarising a calibration: per-member metrics over seeds, ICC, separation, bimodality, agreement
with published orderings, fidelity between presets; written as JSON, CSV and a PNG dot plot.

Metrics of one successful run: `val_loss`, `ar_hit_loss` and `other_loss` (the LM's held-out loss
on associative-recall hits and on the other tokens, evaluate/scoring.py), `benchmark` (mean final accuracy over synthetic tasks),
`fitness` (fitness with ASI-Arch's relative-Δ formula against the panel baseline's mean over its
seeds) and `fitness_seed_sigma` (the same with `formula = "seed-sigma"`, the default since it
measured the higher ICC: the two are kept side by side to compare), `fitness_ar` and `fitness_lm_mean`
(seed-sigma with the loss term built from the AR-hit loss, or from the mean of the two losses'
Δs: `FitnessConfig.lm_term`),
`acc:<task>` and `auc:<task>` per synthetic task, and the run's wall time (recorded, not ranked).
Failed runs are counted per member and left out of the statistics. It reads results; it never
evaluates anything.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from archscout.analyze import calibration as cal
from archscout.analyze.fitness import FitnessConfig, baseline_ref_from_runs, compute_fitness
from archscout.calibration.panel import Panel
from archscout.records import RunResult

# a synthetic task counts as learned on a seed when its final accuracy reaches this (MQAR's chance
# level is 1 / the number of value tokens, a few percent; a run that left the plateau sits far above)
LEARNED_AT = 0.5
BASELINE = "deltanet"
UNRANKED = ("wall_s",)


LOSSES = ("val_loss", "ar_hit_loss", "other_loss")


def lower_is_better(metric: str) -> bool:
    return metric in LOSSES


def run_metrics(result: RunResult) -> dict[str, float]:
    out: dict[str, float] = {}
    if result.val_loss is not None:
        out["val_loss"] = result.val_loss
    lm = next((t for t in result.tasks.values() if t.kind == "lm"), None)
    if lm is not None and lm.ar_hit_loss is not None:
        out["ar_hit_loss"] = lm.ar_hit_loss
    if lm is not None and lm.other_loss is not None:
        out["other_loss"] = lm.other_loss
    if result.benchmark is not None:
        out["benchmark"] = result.benchmark
    for name, task in result.tasks.items():
        if task.accuracy is not None:
            out[f"acc:{name}"] = task.accuracy
        if task.accuracy_auc is not None:
            out[f"auc:{name}"] = task.accuracy_auc
    if "total" in result.wall_s:
        out["wall_s"] = result.wall_s["total"]
    return out


def _fitness(results: dict[str, list[RunResult]], baseline: str, config: FitnessConfig) -> dict[tuple[str, int], float]:
    base_runs = results.get(baseline, [])
    try:
        ref = baseline_ref_from_runs(base_runs)
    except ValueError:
        return {}
    out = {}
    for member, runs in results.items():
        for r in runs:
            if r.ok and r.val_loss is not None:
                out[(member, r.seed)] = compute_fitness(r, ref, config).fitness
    return out


def groups_by_metric(results: dict[str, list[RunResult]], baseline: str = BASELINE) -> dict[str, cal.Groups]:
    """metric -> member -> values over its successful seeds."""
    formulas = {
        "fitness": _fitness(results, baseline, FitnessConfig(formula="asi-arch")),
        "fitness_seed_sigma": _fitness(results, baseline, FitnessConfig(formula="seed-sigma")),
        "fitness_ar": _fitness(results, baseline, FitnessConfig(formula="seed-sigma", lm_term="ar_hit")),
        "fitness_lm_mean": _fitness(results, baseline, FitnessConfig(formula="seed-sigma", lm_term="mean")),
    }
    by_metric: dict[str, cal.Groups] = {}
    for member, runs in results.items():
        for r in runs:
            if not r.ok:
                continue
            metrics = run_metrics(r)
            for name, values in formulas.items():
                if (member, r.seed) in values:
                    metrics[name] = values[(member, r.seed)]
            for name, value in metrics.items():
                by_metric.setdefault(name, {}).setdefault(member, []).append(value)
    return by_metric


def _floors_last(groups: cal.Groups, floors: set[str], lower_better: bool) -> bool | None:
    m = cal.means(groups)
    ranked, floor_vals = [v for k, v in m.items() if k not in floors], [v for k, v in m.items() if k in floors]
    if not ranked or not floor_vals:
        return None
    return max(floor_vals) < min(ranked) if not lower_better else min(floor_vals) > max(ranked)


def summarise(panel: Panel, preset: str, results: dict[str, list[RunResult]], n_boot: int = cal.BOOTSTRAP) -> dict:
    baseline = BASELINE if BASELINE in results else next(iter(results), "")
    by_metric = groups_by_metric(results, baseline)
    floors = {m.name for m in panel.members if m.floor}
    members = {}
    for member, runs in results.items():
        entry = {
            "floor": member in floors,
            "n_ok": sum(r.ok for r in runs),
            "n_failed": sum(not r.ok for r in runs),
            "failures": [f"seed {r.seed}: {r.failure.kind.value}: {r.failure.message}" for r in runs if r.failure],
            "metrics": {},
            "learned_share": {},
        }
        for metric, groups in by_metric.items():
            vals = groups.get(member, [])
            if vals:
                entry["metrics"][metric] = {
                    "mean": sum(vals) / len(vals), "std": cal.seed_sd(vals), "n": len(vals), "values": vals,
                }
            if metric.startswith("acc:") and vals:
                entry["learned_share"][metric[4:]] = cal.learned_share(vals, LEARNED_AT)
        members[member] = entry
    metrics = {}
    for metric, groups in by_metric.items():
        row = {"separation": cal.separation(groups)}
        if metric not in UNRANKED:
            row["icc"] = cal.icc(groups, n_boot=n_boot).as_dict()
            row["floors_last"] = _floors_last(groups, floors, lower_is_better(metric))
        metrics[metric] = row
    orderings = []
    for o in panel.orderings:
        groups = by_metric.get(o.metric, {})
        # agreement is +1 when the measured and published "better" point the same way
        same = o.higher_is_better != lower_is_better(o.metric)
        est, n = cal.kendall_vs_published(groups, o.values, same_direction=same, n_boot=n_boot)
        orderings.append({"name": o.name, "source": o.source, "metric": o.metric, "n": n, "tau": est.as_dict()})
    base_learned = members.get(baseline, {}).get("learned_share", {})
    return {
        "preset": preset,
        "baseline": baseline,
        "learned_at": LEARNED_AT,
        "members": members,
        "metrics": metrics,
        "orderings": orderings,
        "baseline_learns_every_task_on_every_seed": bool(base_learned) and all(v == 1.0 for v in base_learned.values()),
    }


def fidelity(a: dict, b: dict, results_a: dict, results_b: dict, n_boot: int = cal.BOOTSTRAP) -> dict:
    """Spearman rho (bootstrap CI) between two presets' per-member means, per shared metric."""
    ga, gb = groups_by_metric(results_a, a["baseline"]), groups_by_metric(results_b, b["baseline"])
    out = {}
    for metric in sorted(set(ga) & set(gb) - set(UNRANKED)):
        est, n = cal.spearman_between(ga[metric], gb[metric], n_boot=n_boot)
        out[metric] = {"n": n, "rho": est.as_dict()}
    return {"from": a["preset"], "to": b["preset"], "metrics": out}


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def write_outputs(folder: Path, summaries: list[dict], results: dict[str, dict[str, list[RunResult]]], fidelities: list[dict]) -> dict[str, Path]:
    """calibration-<presets>.json, runs.csv and dots-<preset>.png in `folder`; also the latest
    summary per preset as `<folder>/../summary-<preset>.json` for `archscout report`."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = "+".join(s["preset"] for s in summaries)
    paths = {}
    payload = _json_safe({"presets": summaries, "fidelity": fidelities})
    paths["json"] = folder / f"calibration-{tag}.json"
    paths["json"].write_text(json.dumps(payload, indent=2))
    for s in summaries:
        (folder.parent / f"summary-{s['preset']}.json").write_text(json.dumps(_json_safe(s), indent=2))
    rows = []
    for preset, by_member in results.items():
        for member, runs in by_member.items():
            for r in runs:
                row = {"preset": preset, "member": member, "seed": r.seed, "status": r.status,
                       "failure": r.failure.kind.value if r.failure else ""}
                row.update(run_metrics(r))
                rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    paths["csv"] = folder / f"runs-{tag}.csv"
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys or ["empty"])
        writer.writeheader()
        writer.writerows(rows)
    for s in summaries:
        paths[f"png {s['preset']}"] = dot_plot(folder / f"dots-{s['preset']}.png", s)
    return paths


def dot_plot(path: Path, summary: dict) -> Path:
    """Every seed's value per member, one panel per ranked metric, with the member mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in summary["metrics"] if m not in UNRANKED]
    members = list(summary["members"])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6, 0.7 * len(members)), 2.2 * max(1, len(metrics))), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        for i, member in enumerate(members):
            entry = summary["members"][member]["metrics"].get(metric)
            if not entry:
                continue
            vals = entry["values"]
            xs = [i + 0.08 * (j - (len(vals) - 1) / 2) for j in range(len(vals))]
            color = "tab:gray" if summary["members"][member]["floor"] else "tab:blue"
            ax.scatter(xs, vals, s=14, color=color, alpha=0.8)
            ax.hlines(entry["mean"], i - 0.3, i + 0.3, color="black", linewidth=1)
        icc = summary["metrics"][metric].get("icc", {}).get("value")
        ax.set_title(f"{metric}  (ICC {icc:.2f})" if icc is not None and math.isfinite(icc) else metric, fontsize=9)
        ax.set_xticks(range(len(members)))
        ax.set_xticklabels(members, rotation=30, ha="right", fontsize=7)
    fig.suptitle(f"calibration at preset {summary['preset']}: every seed per member", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
