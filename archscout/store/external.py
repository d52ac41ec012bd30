"""External results: what another project published for an architecture, kept apart from our runs.

One row per (source, source_id) in `external_results` (migration 5), e.g. ASI-Arch's published
figures for one of its 106 architectures, with a label that says where they come from. Nothing here
reads or writes runs or scores: an external figure is never one of our measurements. Also the one
write an import needs on architectures (linking a parent once both sides are stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from archscout.store import schema as s
from archscout.store.db import StudyDB


class ExternalResult(BaseModel):
    id: int
    architecture_id: int
    source: str
    source_id: str
    label: str
    data: dict[str, Any]
    created_at: datetime


def add_external(
    db: StudyDB, architecture_id: int, source: str, source_id: str, label: str, data: dict[str, Any],
    *, conn: Connection | None = None,
) -> int:
    with db.writing(conn) as c:
        values = dict(architecture_id=architecture_id, source=source, source_id=source_id, label=label,
                      data=data, created_at=s.utcnow())
        return c.execute(insert(s.external_results).values(**values)).inserted_primary_key[0]


def externals(db: StudyDB, source: str | None = None, *, conn: Connection | None = None) -> list[ExternalResult]:
    stmt = select(s.external_results).order_by(s.external_results.c.id)
    if source is not None:
        stmt = stmt.where(s.external_results.c.source == source)
    return [ExternalResult.model_validate(r._mapping) for r in db.fetch_all(stmt, conn)]


def external_by_key(
    db: StudyDB, source: str, source_id: str, *, conn: Connection | None = None
) -> ExternalResult | None:
    t = s.external_results
    row = db.fetch_one(select(t).where(t.c.source == source, t.c.source_id == source_id), conn)
    return None if row is None else ExternalResult.model_validate(row._mapping)


def set_external_data(db: StudyDB, external_id: int, data: dict[str, Any], *, conn: Connection | None = None) -> None:
    with db.writing(conn) as c:
        c.execute(update(s.external_results).where(s.external_results.c.id == external_id).values(data=data))


def set_parent(db: StudyDB, architecture_id: int, parent_id: int, *, conn: Connection | None = None) -> None:
    with db.writing(conn) as c:
        c.execute(update(s.architectures).where(s.architectures.c.id == architecture_id).values(parent_id=parent_id))
