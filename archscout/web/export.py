"""`archscout report --site DIR`: the dashboard as static files that open from disk.

Writes every page the server has — `index.html`, `leaderboard.html`, `tree.html`, `trends.html`,
`failures.html`, `calibration.html` and `arch/<id>.html` for every architecture — each beside its `.json` twin, plus
`static/` (our CSS/JS and plotly.min.js copied from the installed `plotly` package). Links are
relative, so the folder opens via file:// and can be moved, zipped or published as is; charts read
their data from a JSON block inside each page, because browsers refuse fetch() of file:// URLs.
A snapshot: the live refresh of the served overview is off here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from archscout.store import bulk
from archscout.study import StudyHandle
from archscout.web.pages import BUILDERS, page_data, render_page
from archscout.web.render import STATIC_DIR, Links, plotly_js


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_site(study: StudyHandle, out: str | Path) -> dict[str, Path]:
    """Write the site into `out` (created; existing files of the same names are replaced)."""
    out = Path(out)
    (out / "arch").mkdir(parents=True, exist_ok=True)
    static = out / "static"
    static.mkdir(exist_ok=True)
    for src in STATIC_DIR.iterdir():
        if src.is_file():
            shutil.copyfile(src, static / src.name)
    shutil.copyfile(plotly_js(), static / "plotly.min.js")
    top = Links(static_site=True)
    for name in BUILDERS:
        data = page_data(study, name)
        _write(out / f"{name}.json", json.dumps(data, indent=1))
        _write(out / f"{name}.html", render_page(study, name, data, top, here=name))
    nested = Links(static_site=True, root="../")
    ids = [n.id for n in bulk.nodes(study.db)]
    for arch_id in ids:
        data = page_data(study, "arch", arch_id)
        _write(out / "arch" / f"{arch_id}.json", json.dumps(data, indent=1))
        _write(out / "arch" / f"{arch_id}.html", render_page(study, "arch", data, nested, here=str(arch_id)))
    return {"index": out / "index.html", "architectures": out / "arch", "static": static}
