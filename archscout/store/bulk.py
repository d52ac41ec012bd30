"""Whole-study reads for pages that show every architecture at once (the dashboard, its export).

db.py answers questions about one architecture or one experiment; a leaderboard over thousands of
architectures cannot ask that once per row. Each function here reads one column set for the whole
study in one query and returns plain Python (dicts, tuples, the typed rows of rows.py), so callers
never build SQLAlchemy statements or see `Row` objects. Nothing here writes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select

from archscout.store import schema as s
from archscout.store.db import StudyDB


class Node(NamedTuple):
    """An architecture's place in the lineage: what the leaderboard and the tree list."""

    id: int
    name: str
    origin: str
    parent_id: int | None


class ExperimentPoint(NamedTuple):
    seq: int
    architecture_id: int
    state: str


class FailedExperiment(NamedTuple):
    seq: int
    architecture_id: int | None
    reason: str | None
    message: str | None
    finished_at: Any


def nodes(db: StudyDB) -> list[Node]:
    t = s.architectures
    return [Node(*r) for r in db.fetch_all(select(t.c.id, t.c.name, t.c.origin, t.c.parent_id).order_by(t.c.id), None)]


def names(db: StudyDB, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    t = s.architectures
    return {r.id: r.name for r in db.fetch_all(select(t.c.id, t.c.name).where(t.c.id.in_(ids)), None)}


def compute_seconds(db: StudyDB) -> float:
    """Wall seconds of every run the study stored (training, probes, failed runs included)."""
    return sum(r[0] or 0.0 for r in db.fetch_all(select(s.runs.c.wall_s), None))


def first_run_metrics(db: StudyDB, stage: str, preset: str) -> dict[int, dict[str, Any]]:
    """Per architecture: the metrics of its lowest-seed ok run at (stage, preset)."""
    t = s.runs
    stmt = (
        select(t.c.architecture_id, t.c.val_loss, t.c.benchmark, t.c.params, t.c.tokens_per_s)
        .where(t.c.stage == stage, t.c.preset == preset, t.c.status == "ok")
        .order_by(t.c.architecture_id, t.c.seed)
    )
    out: dict[int, dict[str, Any]] = {}
    for r in db.fetch_all(stmt, None):
        out.setdefault(r.architecture_id, {"val_loss": r.val_loss, "benchmark": r.benchmark, "params": r.params,
                                           "tokens_per_s": r.tokens_per_s})
    return out


def scores(db: StudyDB, stage: str, preset: str) -> dict[int, tuple[float, dict[str, Any]]]:
    """Per architecture: (fitness, score components) at (stage, preset)."""
    t = s.scores
    stmt = select(t.c.architecture_id, t.c.fitness, t.c.components).where(t.c.stage == stage, t.c.preset == preset)
    return {r.architecture_id: (r.fitness, r.components or {}) for r in db.fetch_all(stmt, None)}


def experiment_points(db: StudyDB) -> list[ExperimentPoint]:
    """Every experiment that has an architecture, in order: the trends page's x axis."""
    e = s.experiments
    stmt = select(e.c.seq, e.c.architecture_id, e.c.state).where(e.c.architecture_id.is_not(None)).order_by(e.c.seq)
    return [ExperimentPoint(*r) for r in db.fetch_all(stmt, None)]


def failed_experiments(db: StudyDB) -> list[FailedExperiment]:
    e = s.experiments
    stmt = (select(e.c.seq, e.c.architecture_id, e.c.failure_reason, e.c.failure_message, e.c.finished_at)
            .where(e.c.state == "failed").order_by(e.c.seq))
    return [FailedExperiment(*r) for r in db.fetch_all(stmt, None)]


def failure_log_tails(db: StudyDB, arch_ids: list[int]) -> dict[int, str]:
    """Per architecture: the log tail of its first failed run (what the failures page shows)."""
    if not arch_ids:
        return {}
    r = s.runs
    stmt = (select(r.c.architecture_id, r.c.result).where(r.c.architecture_id.in_(arch_ids), r.c.status == "failed")
            .order_by(r.c.id))
    tails: dict[int, str] = {}
    for row in db.fetch_all(stmt, None):
        failure = (row.result or {}).get("failure") or {}
        tails.setdefault(row.architecture_id, failure.get("log_tail", ""))
    return tails
