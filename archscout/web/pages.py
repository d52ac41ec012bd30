"""The dashboard's pages as (data, chart data, html): one definition used by the server and the export.

`page_data(study, name)` is a page's `.json` twin. `chart_data` derives what static/app.js draws
from that same data (plus links, which differ between server and export); `render_page` puts both
into the page's template. The server (app.py) and the static export (export.py) differ only in the
`Links` they pass.
"""

from __future__ import annotations

from typing import Any

from archscout.study import StudyHandle
from archscout.web import data as d
from archscout.web.arch import architecture_page
from archscout.web.calibration import calibration_brief, calibration_page
from archscout.web.render import TITLES, Links, render
from archscout.web.tree import lineage


def _overview(study: StudyHandle) -> dict[str, Any]:
    # the overview carries one line of the study preset's latest calibration (web/calibration.py)
    return {**d.overview(study), "calibration": calibration_brief(study)}


BUILDERS = {
    "index": _overview,
    "leaderboard": d.leaderboard,
    "tree": lineage,
    "trends": d.trends,
    "failures": d.failures,
    "calibration": calibration_page,
}


def page_data(study: StudyHandle, name: str, arch_id: int | None = None) -> dict[str, Any] | None:
    """The page's data (its `.json` twin); None for an unknown architecture."""
    if name == "arch":
        return architecture_page(study, arch_id)  # type: ignore[arg-type]
    return BUILDERS[name](study)


def _arch_charts(data: dict[str, Any]) -> dict[str, Any]:
    """One chart per (preset, task): every run's eval curve over the baseline's seed band."""
    curves: dict[str, Any] = {}
    for run in data["runs"]:
        for task, c in run["curves"].items():
            key = f"{run['preset']}/{task}"
            chart = curves.setdefault(key, {
                "title": f"{task} · {c['eval_label']} · preset {run['preset']}", "ylabel": c["eval_label"],
                "series": [], "band": data["baseline_band"].get(run["preset"], {}).get(task),
            })
            if c["eval"]:
                chart["series"].append({"name": f"{run['stage']} seed {run['seed']}",
                                        "x": [p[0] for p in c["eval"]], "y": [p[1] for p in c["eval"]]})
    return {"kind": "arch", "curve_keys": sorted(curves), "curves": curves}


def chart_data(name: str, data: dict[str, Any], links: Links) -> dict[str, Any]:
    if name == "tree":
        return {"kind": "tree", "nodes": data["nodes"], "edges": data["edges"], "arch_url": links.arch_pattern()}
    if name == "trends":
        return {"kind": "trends", "arch_url": links.arch_pattern(), **data}
    if name == "arch":
        return {**_arch_charts(data), "arch_url": links.arch_pattern()}
    return {}


def render_page(study: StudyHandle, name: str, data: dict[str, Any], links: Links, here: str,
                live: bool = False) -> str:
    title = f"#{data['id']} {data['name']}" if name == "arch" else TITLES[name]
    template = "architecture.html" if name == "arch" else f"{name}.html"
    return render(template, links=links, data=data, charts=chart_data(name, data, links), title=title,
                  here=here, current=name, live=live, study=study.config.name)
