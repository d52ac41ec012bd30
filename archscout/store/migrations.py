"""Versioned schema migrations, recorded in the `schema_migrations` table.

A migration is a named function that takes a connection inside a transaction and changes the
schema; `upgrade()` applies, in order, every migration whose version is above the one recorded,
each in its own transaction together with its `schema_migrations` row, so a crash leaves the
database at a whole version. A fresh database and an upgraded one go through the same functions, so
they end identical.

Migrations are history: once released, a function is never edited. That is why migration 1 spells
out the initial tables here instead of reusing `schema.py` (which describes the latest shape and will
keep changing). New changes go in a new function appended to `MIGRATIONS`, and `schema.py` is
updated to match.

What is not here: engine setup (engine.py) and data queries (db.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

from archscout.store.engine import READ_ONLY
from archscout.store.errors import SchemaTooNewError
from archscout.store.schema import UTCDateTime, schema_migrations, utcnow


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _json(name: str, nullable: bool) -> Column:
    return Column(name, JSON(none_as_null=True), nullable=nullable)


def initial_schema(conn: Connection) -> None:
    """Version 1: studies, architectures, runs, scores, analyses, pool versions, experiments."""
    md = MetaData()
    Table(
        "studies",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        _json("config", nullable=False),
    )
    Table(
        "architectures",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", Text, nullable=False),
        Column("parent_id", Integer, ForeignKey("architectures.id"), nullable=True, index=True),
        Column("code", Text, nullable=False),
        Column("code_hash", String(64), nullable=False, unique=True),
        Column("norm_hash", String(64), nullable=True, index=True),
        Column("motivation", Text, nullable=False),
        Column("origin", String(16), nullable=False),
        _json("genome", nullable=True),
        Column("experiment_id", Integer, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
    )
    Table(
        "runs",
        md,
        Column("id", Integer, primary_key=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False),
        Column("stage", String(16), nullable=False),
        Column("preset", String(64), nullable=False),
        Column("seed", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("failure_kind", String(32), nullable=True),
        Column("val_loss", Float, nullable=True),
        Column("benchmark", Float, nullable=True),
        Column("params", BigInteger, nullable=True),
        Column("tokens_per_s", Float, nullable=True),
        Column("wall_s", Float, nullable=True),
        _json("result", nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        UniqueConstraint("architecture_id", "stage", "preset", "seed", name="uq_runs_key"),
    )
    Table(
        "scores",
        md,
        Column("id", Integer, primary_key=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False),
        Column("stage", String(16), nullable=False),
        Column("preset", String(64), nullable=False),
        Column("fitness", Float, nullable=False),
        _json("components", nullable=False),
        _json("baseline_ref", nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        UniqueConstraint("architecture_id", "stage", "preset", name="uq_scores_key"),
        Index("ix_scores_fitness", "fitness"),
    )
    Table(
        "analyses",
        md,
        Column("id", Integer, primary_key=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False, index=True),
        Column("kind", String(16), nullable=False),
        Column("text", Text, nullable=False),
        _json("numbers", nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
    )
    Table(
        "pool_versions",
        md,
        Column("id", Integer, primary_key=True),
        Column("version", Integer, nullable=False, unique=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("experiments_seen", Integer, nullable=False),
        _json("members", nullable=False),
    )
    Table(
        "experiments",
        md,
        Column("id", Integer, primary_key=True),
        Column("seq", Integer, nullable=False, unique=True),
        Column("state", String(16), nullable=False, index=True),
        Column("parent_id", Integer, ForeignKey("architectures.id"), nullable=True),
        _json("reference_ids", nullable=False),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=True),
        Column("failure_reason", String(32), nullable=True, index=True),
        Column("failure_message", Text, nullable=True),
        Column("proposer", String(32), nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime, nullable=True),
    )
    Table(
        "experiment_events",
        md,
        Column("id", Integer, primary_key=True),
        Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False, index=True),
        Column("state", String(16), nullable=False),
        Column("at", UTCDateTime, nullable=False),
        Column("note", Text, nullable=False),
    )
    md.create_all(conn)


def scores_rank_index(conn: Connection) -> None:
    """Version 2: a covering index so ranking the pool reads only the top entries of one preset."""
    # just the columns the index needs, as they were at version 1
    t = Table(
        "scores",
        MetaData(),
        Column("architecture_id", Integer),
        Column("stage", String(16)),
        Column("preset", String(64)),
        Column("fitness", Float),
    )
    Index("ix_scores_rank", t.c.stage, t.c.preset, t.c.fitness.desc(), t.c.architecture_id).create(conn)


def experiment_cost(conn: Connection) -> None:
    """Version 3: experiments.cost_usd, the LLM spend of the proposal (NULL for offline proposers)."""
    _add_column(conn, "experiments", Column("cost_usd", Float, nullable=True))


def llm_ledger(conn: Connection) -> None:
    """Version 4: llm_calls, one row per LLM call (agent, model, prompt, reply, tokens, cost, outcome)."""
    _ledger_table(MetaData()).create(conn)


def _ledger_table(meta: MetaData) -> Table:
    # the referenced tables already exist; declared in this MetaData only so the foreign keys resolve
    Table("experiments", meta, Column("id", Integer, primary_key=True))
    Table("architectures", meta, Column("id", Integer, primary_key=True))
    return Table(
        "llm_calls",
        meta,
        Column("id", Integer, primary_key=True),
        Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=True, index=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=True, index=True),
        Column("agent", String(32), nullable=False),
        Column("provider", String(32), nullable=False),
        Column("model", String(200), nullable=False),
        _json("prompt", nullable=False),
        Column("response", Text, nullable=True),
        Column("tokens_in", Integer, nullable=False),
        Column("tokens_out", Integer, nullable=False),
        Column("latency_s", Float, nullable=False),
        Column("cost_usd", Float, nullable=True),
        Column("outcome", String(32), nullable=False),
        Column("error", Text, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
    )


def quarantine_table(conn: Connection) -> None:
    """Version 5: quarantine, architectures held without a score until a re-check clears them."""
    meta = MetaData()
    Table("architectures", meta, Column("id", Integer, primary_key=True))
    Table(
        "quarantine",
        meta,
        Column("id", Integer, primary_key=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False),
        Column("preset", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("reason", Text, nullable=False),
        _json("evidence", nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        UniqueConstraint("architecture_id", "preset", name="uq_quarantine_key"),
    ).create(conn)


def external_results(conn: Connection) -> None:
    """Version 6: external_results, results another project published for an architecture (e.g.
    ASI-Arch's), kept apart from our runs; one row per (source, source_id)."""
    meta = MetaData()
    Table("architectures", meta, Column("id", Integer, primary_key=True))
    Table(
        "external_results",
        meta,
        Column("id", Integer, primary_key=True),
        Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False, index=True),
        Column("source", String(32), nullable=False),
        Column("source_id", String(64), nullable=False),
        Column("label", Text, nullable=False),
        _json("data", nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        UniqueConstraint("source", "source_id", name="uq_external_results_key"),
    ).create(conn)


def experiment_probe_report(conn: Connection) -> None:
    """Version 7: experiments.probe_report, the passed probe report of the experiment's file, stored
    when it moves to `checked` (a study resumed in `checked` trains without probing again)."""
    _add_column(conn, "experiments", _json("probe_report", nullable=True))


def ladder_tables(conn: Connection) -> None:
    """Version 8: ladder_batches (the scale ladder's promotion plans) and study_stops (why a run
    stopped before its budget)."""
    meta = MetaData()
    Table(
        "ladder_batches",
        meta,
        Column("id", Integer, primary_key=True),
        Column("batch", Integer, nullable=False, unique=True),
        Column("experiments_seen", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        _json("plan", nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime, nullable=True),
    ).create(conn)
    Table(
        "study_stops",
        meta,
        Column("id", Integer, primary_key=True),
        Column("rule", String(32), nullable=False),
        Column("reason", Text, nullable=False),
        Column("experiments", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
    ).create(conn)


def experiment_claims(conn: Connection) -> None:
    """Version 9: experiments.pool_version (the pool an experiment was sampled from) and the claim
    columns owner / lease_until (store/claims.py: which driver works on an open experiment)."""
    _add_column(conn, "experiments", Column("pool_version", Integer, nullable=True))
    _add_column(conn, "experiments", Column("owner", String(128), nullable=True))
    _add_column(conn, "experiments", Column("lease_until", UTCDateTime, nullable=True))


def _add_column(conn: Connection, table: str, column: Column) -> None:
    # SQLAlchemy Core has no ADD COLUMN construct; this statement is the same on SQLite and
    # PostgreSQL once the type is compiled for the connection's dialect and the names quoted
    prep = conn.dialect.identifier_preparer
    type_sql = column.type.compile(dialect=conn.dialect)
    null_sql = "" if column.nullable else " NOT NULL"
    conn.exec_driver_sql(
        f"ALTER TABLE {prep.quote(table)} ADD COLUMN {prep.quote(column.name)} {type_sql}{null_sql}"
    )


MIGRATIONS: list[Migration] = [
    Migration(1, "initial_schema", initial_schema),
    Migration(2, "scores_rank_index", scores_rank_index),
    Migration(3, "experiment_cost", experiment_cost),
    Migration(4, "llm_ledger", llm_ledger),
    Migration(5, "quarantine_table", quarantine_table),
    Migration(6, "external_results", external_results),
    Migration(7, "experiment_probe_report", experiment_probe_report),
    Migration(8, "ladder_tables", ladder_tables),
    Migration(9, "experiment_claims", experiment_claims),
]
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The highest version recorded, 0 for a database with no migrations yet."""
    return conn.execute(select(func.coalesce(func.max(schema_migrations.c.version), 0))).scalar_one()


def upgrade(engine: Engine, target: int | None = None) -> int:
    """Apply the pending migrations up to `target` (default: all); return the version reached.

    Raises `SchemaTooNewError` when the database records a version this code does not know: writing
    to it could silently corrupt data that a newer archscout relies on.
    """
    target = LATEST_VERSION if target is None else target
    # a read first, so that opening an up-to-date study (a dashboard, `status`) never takes the
    # SQLite write lock
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        has_table = inspect(conn).has_table(schema_migrations.name)
        version = current_version(conn) if has_table else 0
    if not has_table:
        with engine.begin() as conn:
            schema_migrations.create(conn, checkfirst=True)
    if version > LATEST_VERSION:
        raise SchemaTooNewError(
            f"study was created by a newer archscout (schema {version} > {LATEST_VERSION}); "
            "upgrade archscout"
        )
    for migration in MIGRATIONS:
        if migration.version <= version or migration.version > target:
            continue
        with engine.begin() as conn:
            _lock_for_migration(conn)
            # re-read under the lock: another process may have applied it while we waited
            if current_version(conn) < migration.version:
                migration.apply(conn)
                conn.execute(
                    insert(schema_migrations).values(
                        version=migration.version, name=migration.name, applied_at=utcnow()
                    )
                )
        version = migration.version
    return version


def _lock_for_migration(conn: Connection) -> None:
    # SQLite transactions here already begin IMMEDIATE (engine.py), which serialises writers;
    # PostgreSQL needs an explicit table lock so two processes do not run the same DDL
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
