"""Rendering shared by the server and the static export: Jinja2 pages, Pygments code, links.

Safety rests here. Names, motivations, code, analyses and logs come from LLMs or candidate files,
so the Jinja2 environment autoescapes everything; the only markup not escaped by Jinja2 is Pygments'
output, which escapes the source itself. Chart data goes into `<script type="application/json">`
blocks via `tojson` (which escapes `<`, `>`, `&` and `'`), never into inline script, so the pages
work under a `script-src 'self'` Content-Security-Policy and when opened from disk (file://, where
fetching a `.json` file is refused).

Links differ by mode: the server uses absolute paths (`/arch/12`, with `/arch/12.json` as its
twin); the export uses paths relative to the page (`arch/12.html`, `../index.html`), so the folder
can be moved or zipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

PAGES = ("index", "leaderboard", "tree", "trends", "failures", "calibration")
TITLES = {"index": "Overview", "leaderboard": "Leaderboard", "tree": "Lineage", "trends": "Trends",
          "failures": "Failures", "calibration": "Calibration"}
STATIC_DIR = Path(__file__).parent / "static"


def plotly_js() -> Path:
    """plotly.min.js from the installed `plotly` package: charts work offline, no CDN."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}; reinstall the `plotly` package")
    return path


@dataclass(frozen=True)
class Links:
    """URLs as one page sees them. `static_site`: relative file links; else server paths."""

    static_site: bool = False
    root: str = ""  # static export: the way from this page up to the site folder, e.g. "../"

    def page(self, name: str) -> str:
        if self.static_site:
            return f"{self.root}{name}.html"
        return "/" if name == "index" else f"/{name}"

    def arch(self, arch_id: int | None) -> str:
        return f"{self.root}arch/{arch_id}.html" if self.static_site else f"/arch/{arch_id}"

    def arch_pattern(self) -> str:
        """For JS building a link from an id (the tree); `{id}` is replaced."""
        return self.arch("{id}")  # type: ignore[arg-type]

    def twin(self, path: str) -> str:
        """The `.json` twin of the page at server path `path` (relative file in the export)."""
        if self.static_site:
            return f"{path}.json"
        return "/index.json" if path == "/" else f"{path}.json"

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}" if self.static_site else f"/static/{name}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("archscout.web", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["highlight"] = highlight
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
    env.filters["posterior"] = fmt_posterior
    return env


def fmt_posterior(post: dict[str, Any] | None) -> str:
    """A posterior fitness as every page shows it: mean [90 % interval] (runs combined)."""
    if not post or post.get("mean") is None:
        return "—"
    n = post.get("n") or 0
    return (f"{fmt_num(post['mean'])} [{fmt_num(post.get('lo'))}, {fmt_num(post.get('hi'))}] "
            f"({n} run{'' if n == 1 else 's'})")


def fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return str(value)


def highlight(code: str, language: str = "python") -> Markup:
    """Source as Pygments HTML (classes only, styled by static/code.css); Pygments escapes it."""
    from pygments import highlight as pyg
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DiffLexer, PythonLexer

    lexer = DiffLexer() if language == "diff" else PythonLexer()
    return Markup(pyg(code or "", lexer, HtmlFormatter(cssclass="hl", linenos=language != "diff")))


def code_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="hl").get_style_defs(".hl")


def render(template: str, *, links: Links, data: dict[str, Any], charts: dict[str, Any] | None = None,
           title: str, here: str, current: str = "", live: bool = False, study: str = "") -> str:
    """One page. `charts` is what static/app.js draws (page-data block); `here` is the page's own
    path (server) or file name without extension (export), `current` the nav entry to highlight."""
    return environment().get_template(template).render(
        data=data, charts=charts or {}, links=links, title=title, here=here, current=current, live=live, study=study,
        pages=PAGES, titles=TITLES,
    )
