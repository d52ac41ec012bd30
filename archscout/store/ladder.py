"""Storage of the scale ladder's promotion batches and of the reason a study stopped.

A batch is one row: its plan (a JSON list of actions, each naming the architecture, what it gets —
more seeds at its rung, a first run at the next rung, verification — and why) is written before any
of its runs and marked done after the last, so resume reads the open batch and continues it. The
decisions themselves are ladder.py's; runs are in the runs table like any other (stage `promote`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update

from archscout.store import schema as s
from archscout.store.db import StudyDB


def open_batch(db: StudyDB, *, conn=None) -> dict[str, Any] | None:
    t = s.ladder_batches
    row = db.fetch_one(select(t).where(t.c.state == "open").order_by(t.c.batch).limit(1), conn)
    return None if row is None else dict(row._mapping)


def last_batch(db: StudyDB, *, conn=None) -> dict[str, Any] | None:
    t = s.ladder_batches
    row = db.fetch_one(select(t).order_by(t.c.batch.desc()).limit(1), conn)
    return None if row is None else dict(row._mapping)


def batches(db: StudyDB, *, conn=None) -> list[dict[str, Any]]:
    t = s.ladder_batches
    return [dict(r._mapping) for r in db.fetch_all(select(t).order_by(t.c.batch), conn)]


def add_batch(db: StudyDB, experiments_seen: int, plan: list[dict[str, Any]], *, conn=None) -> dict[str, Any]:
    """Store the next batch's plan as open; returns the row."""
    t = s.ladder_batches
    with db.writing(conn) as c:
        number = c.execute(select(func.coalesce(func.max(t.c.batch), 0))).scalar_one() + 1
        c.execute(insert(t).values(batch=number, experiments_seen=experiments_seen, state="open", plan=plan,
                                   created_at=s.utcnow()))
        return dict(c.execute(select(t).where(t.c.batch == number)).one()._mapping)


def finish_batch(db: StudyDB, batch: int, *, conn=None) -> None:
    t = s.ladder_batches
    with db.writing(conn) as c:
        c.execute(update(t).where(t.c.batch == batch).values(state="done", finished_at=s.utcnow()))


def record_stop(db: StudyDB, rule: str, reason: str, experiments: int, *, conn=None) -> None:
    with db.writing(conn) as c:
        c.execute(insert(s.study_stops).values(rule=rule, reason=reason, experiments=experiments,
                                               created_at=s.utcnow()))


def last_stop(db: StudyDB, *, conn=None) -> dict[str, Any] | None:
    t = s.study_stops
    row = db.fetch_one(select(t).order_by(t.c.id.desc()).limit(1), conn)
    return None if row is None else dict(row._mapping)
