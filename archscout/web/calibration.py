"""The dashboard's calibration page and the overview's calibration line: how far the study's preset
can be trusted, as last measured by `archscout calibrate --study DIR --preset P`.

The data comes from the summary that command writes, `<study>/calibration/summary-<preset>.json`
(calibration/summary.py): per panel member the mean ± seed std of every metric, the share of seeds
on which each synthetic task was learned (a share strictly between 0 and 1 is flagged bimodal: the
preset measures luck there), the ICC of each metric with its bootstrap CI, whether the floors rank
last, the separation of the baseline from linear attention in pooled seed σ, and Kendall τ against
each published ordering. A study that was never calibrated, or whose summary cannot be read, gets a
page that says so instead of an error. Nothing here runs or recomputes a calibration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archscout.study import StudyHandle
from archscout.web.data import clean

# ranked metrics first in this order; per-task final accuracy is summarised by the learned share
ORDER = ("fitness", "fitness_seed_sigma", "val_loss", "benchmark")
HIDDEN_PREFIX = "acc:"
UNRANKED = "wall_s"


def summary_path(study: StudyHandle) -> Path:
    # the file `archscout calibrate --study` writes (calibration/cli.py latest_summary reads the same)
    return Path(study.folder) / "calibration" / f"summary-{study.preset.name}.json"


def _load(study: StudyHandle) -> tuple[dict | None, str | None]:
    path = summary_path(study)
    if not path.is_file():
        return None, None
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or not isinstance(summary.get("members"), dict):
            raise TypeError("not a calibration summary")
    except (OSError, ValueError, TypeError) as err:
        return None, f"{path.name} cannot be read ({type(err).__name__}: {str(err)[:120]})"
    return summary, None


def _metric_names(summary: dict) -> list[str]:
    names = [m for m in summary.get("metrics", {}) if m != UNRANKED and not m.startswith(HIDDEN_PREFIX)]
    return sorted(names, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def _hint(study: StudyHandle) -> str:
    return f"archscout calibrate --study {study.folder} --preset {study.preset.name}"


def calibration_page(study: StudyHandle) -> dict[str, Any]:
    """The calibration page's data (its `.json` twin)."""
    preset = study.preset.name
    summary, error = _load(study)
    base = {"preset": preset, "file": f"calibration/{summary_path(study).name}", "command": _hint(study)}
    if summary is None:
        return {**base, "calibrated": False, "error": error}
    metrics = _metric_names(summary)
    members = []
    for name, e in summary["members"].items():
        learned = e.get("learned_share", {}) or {}
        members.append({
            "name": name, "floor": bool(e.get("floor")), "n_ok": e.get("n_ok", 0), "n_failed": e.get("n_failed", 0),
            "failures": e.get("failures", []),
            "values": {m: {k: e["metrics"][m].get(k) for k in ("mean", "std", "n")} for m in metrics + [UNRANKED]
                       if m in e.get("metrics", {})},
            "learned": learned,
            "bimodal": sorted(t for t, share in learned.items() if isinstance(share, (int, float)) and 0 < share < 1),
        })
    per_metric = summary.get("metrics", {})
    baseline = summary.get("baseline", "")
    mtime = datetime.fromtimestamp(summary_path(study).stat().st_mtime, UTC)
    return clean({
        **base,
        "calibrated": True,
        "error": None,
        "written_at": mtime.isoformat(timespec="seconds"),
        "baseline": baseline,
        "learned_at": summary.get("learned_at"),
        "baseline_learns_every_task": bool(summary.get("baseline_learns_every_task_on_every_seed")),
        "metrics": metrics,
        "members": members,
        "icc": {m: per_metric.get(m, {}).get("icc") for m in metrics},
        "floors_last": {m: per_metric.get(m, {}).get("floors_last") for m in metrics},
        "separation": {m: per_metric.get(m, {}).get("separation", {}).get(baseline, {}).get("linear_attention")
                       for m in metrics},
        "orderings": summary.get("orderings", []),
        "bimodal": [f"{m['name']}: {t}" for m in members for t in m["bimodal"]],
    })


def calibration_brief(study: StudyHandle) -> dict[str, Any]:
    """The overview's line: calibrated or not, fitness ICC, the baseline's learned-every-seed check."""
    page = calibration_page(study)
    if not page["calibrated"]:
        return {k: page[k] for k in ("preset", "calibrated", "error", "command")}
    return {
        "preset": page["preset"], "calibrated": True, "error": None, "command": page["command"],
        "written_at": page["written_at"], "members": len(page["members"]),
        "seeds": max((m["n_ok"] + m["n_failed"] for m in page["members"]), default=0),
        # the default formula's (seed-sigma); older summaries may lack it
        "fitness_icc": page["icc"].get("fitness_seed_sigma") or page["icc"].get("fitness"),
        "baseline_learns_every_task": page["baseline_learns_every_task"],
        "bimodal": len(page["bimodal"]),
    }
