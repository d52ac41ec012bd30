"""Rendering of the agents' prompt templates, and the text helpers they share.

Every LLM agent (planner, novelty judge, diversifier, code reviewer, debugger, analyst, summarizer,
rubric judge) has two Jinja2 files under `agents/prompts/`: `<agent>.system.j2` and
`<agent>.user.j2`; shared text (the candidate contract) lives in `_*.j2` partials they include.
Templates render with `StrictUndefined`, so a variable the caller forgot fails loudly instead of
producing a prompt with a hole in it, and with autoescaping off, because the output is plain text
that carries Python source.

Also here: bounded excerpts of code and logs (prompts must stay a predictable size however long a
candidate or a traceback is), markdown fence stripping for code that arrives inside JSON, and the
formatting of retrieved cognition entries. This module knows nothing about the LLM client.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

PROMPT_DIR = Path(__file__).parent / "prompts"
MAX_CODE_CHARS = 16_000  # a typical candidate is 3-8k characters; ASI-Arch's largest ~14k
MAX_LOG_LINES = 60
MAX_LOG_CHARS = 4_000
MAX_TEXT_CHARS = 3_000  # analyses, motivations, digests quoted into another agent's prompt

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def excerpt(text: str, max_chars: int = MAX_CODE_CHARS) -> str:
    """`text` whole when short, else its head and tail with a marker saying how much was cut.

    Head and tail both matter for code: imports and __init__ sit at the top, forward at the bottom.
    """
    text = text or ""
    if len(text) <= max_chars:
        return text
    keep = max_chars // 2
    cut = len(text) - 2 * keep
    return f"{text[:keep]}\n# ... [{cut} characters omitted] ...\n{text[-keep:]}"


def shorten(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The start of a prose text; the start of an analysis or motivation says what matters most."""
    text = (text or "").strip()
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


def tail(text: str, max_lines: int = MAX_LOG_LINES, max_chars: int = MAX_LOG_CHARS) -> str:
    """The last lines of a log: a traceback's cause is at its end."""
    lines = (text or "").rstrip().splitlines()[-max_lines:]
    out = "\n".join(lines)
    return out if len(out) <= max_chars else "[...]" + out[-max_chars:]


def strip_fence(code: str) -> str:
    """Code without a surrounding ```python fence, which models often add even inside JSON."""
    match = _FENCE.match(code or "")
    return (match.group(1) if match else code or "").strip("\n") + "\n"


def fmt_num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN: one seed's std
        return "n/a"
    if isinstance(value, float):
        # throughputs and parameter counts read better without decimals
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def vs_baseline(value: float | None, mean: float | None, std: float | None) -> str:
    """" (+0.0123, +1.2σ vs baseline)" for a metric, empty when either side is missing."""
    if value is None or mean is None:
        return ""
    delta = value - mean
    sigma = f", {delta / std:+.1f}σ" if std and not math.isnan(std) else ""
    return f" ({delta:+.4f}{sigma} vs baseline)"


def to_json(value: Any) -> str:
    """Compact, stable JSON for numbers quoted into a prompt (floats kept to 4 decimals)."""

    def round_floats(obj: Any) -> Any:
        if isinstance(obj, float):
            return round(obj, 4)
        if isinstance(obj, dict):
            return {str(k): round_floats(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [round_floats(v) for v in obj]
        return obj

    return json.dumps(round_floats(value), indent=1, sort_keys=True, default=str)


def cognition_view(hits: Iterable[Any], max_chars: int = 1_200) -> list[dict[str, str]]:
    """Retrieved cognition hits (anything with an `.entry`, or bare entries) as plain dicts for a
    template; each long field is shortened so that k entries fit in any prompt."""
    out = []
    for hit in hits or ():
        entry = getattr(hit, "entry", hit)
        out.append({
            "id": str(getattr(entry, "id", "")),
            "title": str(getattr(entry, "title", "")),
            "source": str(getattr(entry, "source", "")),
            **{
                field: shorten(str(getattr(entry, field, "") or ""), max_chars)
                for field in ("trigger", "background", "algorithm", "implementation")
            },
        })
    return out


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPT_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(excerpt=excerpt, shorten=shorten, tail=tail, num=fmt_num, json=to_json)
    env.globals.update(vs_baseline=vs_baseline)
    return env


def render(name: str, **ctx: Any) -> str:
    """Render one template file, e.g. `render("planner.user.j2", parent=...)`; the `.j2` suffix
    may be left off. A variable the template uses but `ctx` lacks raises jinja2.UndefinedError."""
    if not name.endswith(".j2"):
        name += ".j2"
    return environment().get_template(name).render(**ctx)


def render_pair(agent: str, **ctx: Any) -> tuple[str, str]:
    """(system, user) prompts of one agent; both templates see the same context."""
    return render(f"{agent}.system", **ctx), render(f"{agent}.user", **ctx)


def templates() -> list[str]:
    """Every agent that ships a system and a user template."""
    names = {p.name.split(".")[0] for p in PROMPT_DIR.glob("*.system.j2")}
    return sorted(n for n in names if (PROMPT_DIR / f"{n}.user.j2").exists())
