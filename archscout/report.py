"""`archscout report`: the study's honest numbers as data (CSV + JSON) and figures (PNG).

Written into `<study>/report/`:
- `noise_floor.json`   the baseline's mean / std / n per metric over its seeds;
- `verification.csv|json`  every verified architecture: effect with 95% CI, p, BH q, verdict;
- `shrinkage.csv|json` exploration Δ next to verification Δ per architecture, mean shrinkage, how
  many exploration "winners" survived, the regression slope;
- `fidelity.json`      Spearman ρ (bootstrap CI) between two presets' verification results, when
  the same architectures were verified at two presets;
- `scaling.csv|json|png`  cumulative single-run "improvements" (as ASI-Arch counted them) and
  cumulative verified discoveries against cumulative compute (device-hours = run wall hours);
- `shrinkage.png`;
- `posterior.csv`      every candidate's posterior fitness (mean, 90 % interval, runs combined) beside
  its exploration run's fitness; `archscout report` prints its top rows;
- `external_agreement.json`  for imported architectures with published results (ASI-Arch's), Spearman
  ρ (bootstrap CI) between our measured ranking and theirs on each preset evaluated.
It reads the database; it never evaluates anything.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from archscout.analyze.agreement import external_agreement
from archscout.analyze.stats import rank_fidelity, scaling_curve, shrinkage
from archscout.store.schema import Stage
from archscout.study import StudyHandle
from archscout.summary import baseline_noise

EXPLORE, VERIFY = Stage.EXPLORE, Stage.VERIFY


def _write(folder: Path, name: str, rows: list[dict] | dict) -> Path:
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(rows, indent=2, default=str))
    else:
        rows = list(rows)
        keys = list(rows[0]) if rows else ["empty"]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path


def verification_rows(study: StudyHandle, preset: str) -> list[dict[str, Any]]:
    rows = []
    for arch_id in study.db.architectures_with_runs(VERIFY, preset):
        score = study.db.score(arch_id, VERIFY, preset)
        if score is None:
            continue
        verdict = score.components["verdict"]
        arch = study.db.architecture(arch_id)
        row = {"id": arch_id, "name": arch.name, "preset": preset, "discovery": verdict["discovery"],
               "q_value": verdict["q_value"], "reason": verdict["reason"], "seeds": len(score.components["seeds"]),
               "explore_delta": score.components.get("explore_delta"), "verify_delta": score.components.get("verify_delta")}
        for metric, cmp in score.components["comparisons"].items():
            row.update({f"{metric}_effect": cmp["effect"], f"{metric}_ci_low": cmp["ci_low"],
                        f"{metric}_ci_high": cmp["ci_high"], f"{metric}_p": cmp["p_value"]})
        rows.append(row)
    return rows


def scaling_events(study: StudyHandle, discoveries: set[int]) -> list[dict[str, Any]]:
    """One row per stored run, in order: its compute, and whether it counted as an improvement."""
    baseline_ids = {a.id for a in study.db.architectures_by_origin("baseline")}
    last_verify: dict[int, int] = {}
    timeline = study.db.run_timeline()
    for i, run in enumerate(timeline):
        if run.stage == VERIFY:
            last_verify[run.architecture_id] = i
    events = []
    for i, run in enumerate(timeline):
        improvement = False
        if run.stage == EXPLORE and run.architecture_id not in baseline_ids and run.status == "ok":
            score = study.db.score(run.architecture_id, EXPLORE, run.preset)
            improvement = bool(score and (score.components.get("delta_loss") or 0) > 0)
        verified = run.stage == VERIFY and run.architecture_id in discoveries and last_verify.get(run.architecture_id) == i
        events.append({"run_id": run.id, "stage": run.stage, "architecture_id": run.architecture_id,
                       "compute_h": (run.wall_s or 0.0) / 3600, "single_run_improvement": improvement,
                       "verified_discovery": verified})
    return scaling_curve(events)


def posterior_rows(study: StudyHandle) -> list[dict[str, Any]]:
    """Fitness as the search ranks it: every candidate's (and the baseline's) posterior over all its
    runs (analyze/posterior.py), best mean first, beside its exploration run's fitness."""
    from archscout.ladder import study_posteriors

    posts = sorted(study_posteriors(study).values(), key=lambda p: (-p.mean, p.arch_id))
    rows = []
    for p in posts:
        arch = study.db.architecture(p.arch_id)
        score = study.db.score(p.arch_id, EXPLORE, study.preset.name)
        rows.append({"id": p.arch_id, "name": arch.name, "origin": arch.origin,
                     "fitness": score.fitness if score else None, "mean": p.mean, "lo90": p.lo, "hi90": p.hi,
                     "sd": p.sd, "runs": p.n, "raw_mean": p.raw,
                     "by_rung": " ".join(f"{k}:{v}" for k, v in p.runs.items())})
    return rows


def write_report(study: StudyHandle) -> dict[str, Path]:
    folder = study.folder / "report"
    folder.mkdir(exist_ok=True)
    paths: dict[str, Path] = {}
    paths["noise_floor"] = _write(folder, "noise_floor.json", baseline_noise(study))
    presets = sorted({r.preset for r in study.db.run_timeline() if r.stage == VERIFY} | {study.preset.name})
    rows = [row for p in presets for row in verification_rows(study, p)]
    paths["verification_csv"] = _write(folder, "verification.csv", rows)
    paths["verification_json"] = _write(folder, "verification.json", rows)
    here = [r for r in rows if r["preset"] == study.preset.name]
    shrink = shrinkage(
        {r["id"]: r["explore_delta"] for r in here if r["explore_delta"] is not None},
        {r["id"]: r["verify_delta"] for r in here if r["verify_delta"] is not None},
    )
    paths["shrinkage_json"] = _write(folder, "shrinkage.json", shrink.model_dump(mode="json"))
    paths["shrinkage_csv"] = _write(folder, "shrinkage.csv", [r.model_dump() for r in shrink.rows])
    if len(presets) >= 2:
        a, b = presets[:2]
        by_preset = {p: {r["id"]: r["verify_delta"] for r in rows if r["preset"] == p and r["verify_delta"] is not None}
                     for p in (a, b)}
        fid = rank_fidelity(by_preset[a], by_preset[b])
        paths["fidelity"] = _write(folder, "fidelity.json", {"presets": [a, b], **fid.model_dump(mode="json")})
    discoveries = {r["id"] for r in rows if r["discovery"]}
    curve = scaling_events(study, discoveries)
    paths["scaling_csv"] = _write(folder, "scaling.csv", curve)
    paths["scaling_json"] = _write(folder, "scaling.json", curve)
    paths.update(_plots(folder, curve, shrink))
    from archscout.ladder import rung_table

    paths["posterior_csv"] = _write(folder, "posterior.csv", posterior_rows(study))
    if study.config.ladder.rungs:
        paths["ladder_json"] = _write(folder, "ladder.json", rung_table(study))
    if agreement := external_agreement(study.db):
        paths["external_agreement"] = _write(folder, "external_agreement.json", agreement)
    return paths


def _plots(folder: Path, curve: list[dict], shrink) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [row["cumulative_compute_h"] for row in curve]
    ax.step(x, [row["cumulative_single_run_improvements"] for row in curve], where="post",
            label="single-run improvements (as ASI-Arch counted)")
    ax.step(x, [row["cumulative_verified_discoveries"] for row in curve], where="post",
            label="verified discoveries (seeds + FDR test)")
    ax.set_xlabel("cumulative compute (device-hours)")
    ax.set_ylabel("count")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out["scaling_png"] = folder / "scaling.png"
    fig.savefig(out["scaling_png"], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([r.explore for r in shrink.rows], [r.verify for r in shrink.rows])
    ax.axhline(0, color="grey", lw=0.8)
    ax.axline((0, 0), slope=1, color="grey", ls="--", lw=0.8, label="no shrinkage")
    ax.set_xlabel("exploration Δ (single run)")
    ax.set_ylabel("verification Δ (mean over fresh seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["shrinkage_png"] = folder / "shrinkage.png"
    fig.savefig(out["shrinkage_png"], dpi=120)
    plt.close(fig)
    return out
