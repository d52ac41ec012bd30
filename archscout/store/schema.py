"""The study database's tables as the code reads and writes them (the schema at the latest migration).

Queries in `db.py`, `experiments.py` and `pool.py` use these `Table` objects. They describe the shape
the migrations in `migrations.py` produce; they never create anything themselves (a test checks that
a migrated database matches them). Only portable types are used, so the same definitions run on
SQLite and PostgreSQL.

What is not here: how rows are created or upgraded (migrations.py) and any query logic (db.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

ORIGINS = ("baseline", "offline", "llm", "import", "user")


class Stage(StrEnum):
    """Which evaluation a run or a score belongs to. A `str`: stored, compared and printed as its value."""

    EXPLORE = "explore"  # the loop's single-seed runs (loop.py)
    VERIFY = "verify"  # re-training over fresh seeds (verify.py)
    RECHECK = "recheck"  # the stricter re-check of a quarantined architecture (quarantine.py)
    PROMOTE = "promote"  # the ladder's extra seeds and higher rungs for a promoted candidate (ladder.py)


STAGES = tuple(stage.value for stage in Stage)
RUN_STATUSES = ("ok", "failed")
# statistical: the offline analyst; llm: the LLM Analyst (sections + cognition used in numbers);
# experience: the Summarizer's cached digest; judge: the LLM judge's rubric scores
ANALYSIS_KINDS = ("statistical", "llm", "experience", "judge")


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    SQLite stores DateTime as text without an offset and hands back naive values; attaching UTC on the
    way out means callers compare and subtract timestamps the same way on SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def json_column(name: str, nullable: bool) -> Column:
    # none_as_null: a Python None must be SQL NULL (testable with IS NULL), not the JSON text 'null'
    return Column(name, JSON(none_as_null=True), nullable=nullable)


metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    json_column("config", nullable=False),
)

architectures = Table(
    "architectures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("parent_id", Integer, ForeignKey("architectures.id"), nullable=True, index=True),
    Column("code", Text, nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("norm_hash", String(64), nullable=True, index=True),  # normalised-AST hash (novelty)
    Column("motivation", Text, nullable=False),
    Column("origin", String(16), nullable=False),
    json_column("genome", nullable=True),  # offline proposer's genome; None for code from elsewhere
    # plain integer, not a foreign key: experiments.architecture_id already points the other way,
    # and a cycle of foreign keys cannot be created on SQLite with foreign_keys=ON
    Column("experiment_id", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
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
    Column("wall_s", Float, nullable=True),  # total seconds; the per-phase split is in result
    json_column("result", nullable=False),  # the full RunResult dump
    Column("created_at", UTCDateTime, nullable=False),
    # its index leads with architecture_id, so it also serves runs_for(); no separate index needed
    UniqueConstraint("architecture_id", "stage", "preset", "seed", name="uq_runs_key"),
)

scores = Table(
    "scores",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("preset", String(64), nullable=False),
    Column("fitness", Float, nullable=False),
    json_column("components", nullable=False),  # loss_term, bench_term, judge_term, deltas...
    json_column("baseline_ref", nullable=True),  # which baseline runs the deltas were taken against
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("architecture_id", "stage", "preset", name="uq_scores_key"),
    Index("ix_scores_fitness", "fitness"),
)
# Migration 5 (quarantine.py): an architecture whose run looked too good to be true (loss far below
# the baseline, or far more compute per step) is held here, without a score, until a re-check
# clears it ("cleared") or finds the cheat ("confirmed").
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False),
    Column("preset", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # quarantined | cleared | confirmed
    Column("reason", Text, nullable=False),
    json_column("evidence", nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("architecture_id", "preset", name="uq_quarantine_key"),
)

# Migration 2. Ranking one (stage, preset) by fitness reads this index in order and stops after
# LIMIT entries; carrying architecture_id makes it covering, so neither the top-k query nor the
# random-parent OFFSET query touches the table.
Index(
    "ix_scores_rank",
    scores.c.stage,
    scores.c.preset,
    scores.c.fitness.desc(),
    scores.c.architecture_id,
)

analyses = Table(
    "analyses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    json_column("numbers", nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

pool_versions = Table(
    "pool_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("experiments_seen", Integer, nullable=False),  # experiments done when it was ranked
    json_column("members", nullable=False),  # ordered [[architecture_id, fitness], ...], best first
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False, unique=True),  # the experiment number shown to users
    Column("state", String(16), nullable=False, index=True),
    Column("parent_id", Integer, ForeignKey("architectures.id"), nullable=True),
    json_column("reference_ids", nullable=False),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=True),
    Column("failure_reason", String(32), nullable=True, index=True),
    Column("failure_message", Text, nullable=True),
    Column("proposer", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("cost_usd", Float, nullable=True),  # migration 3: LLM spend of the proposal
    # migration 7: the passed probe report (RunResult JSON) of the file the experiment was checked
    # with; kept here rather than as a run row, which every statistic over runs would then count
    json_column("probe_report", nullable=True),
    # migration 9: the pool version the experiment was sampled from, and the driver working on it
    # (owner id, lease expiry; store/claims.py) so two drivers never resume the same experiment
    Column("pool_version", Integer, nullable=True),
    Column("owner", String(128), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
)

experiment_events = Table(
    "experiment_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("note", Text, nullable=False),
)

# Migration 4: the LLM ledger. Every call any agent makes is one row, whatever its outcome, so a
# study's spend, its budgets and each architecture's "cognitive trace" are all queries on this table.
llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=True, index=True),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=True, index=True),
    Column("agent", String(32), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    json_column("prompt", nullable=False),  # {"system": ..., "user": ...} as sent
    Column("response", Text, nullable=True),  # raw text of the reply (None when no reply came)
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("cost_usd", Float, nullable=True),  # None when the model has no price in the table
    Column("outcome", String(32), nullable=False),  # ok | invalid | repaired | error
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)


# Migration 5. What another project published for an architecture (ASI-Arch's results for its 106
# architectures), labelled with its source; never mixed into runs or scores.
external_results = Table(
    "external_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("architecture_id", Integer, ForeignKey("architectures.id"), nullable=False, index=True),
    Column("source", String(32), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("label", Text, nullable=False),
    json_column("data", nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "source_id", name="uq_external_results_key"),
)


# Migration 7 (ladder.py). One row per promotion batch: the plan (who gets more seeds, who moves up a
# rung, who goes to verification, and why) is committed before any of its runs, so a killed batch is
# resumed from its plan; `state` becomes "done" once every planned run is stored.
ladder_batches = Table(
    "ladder_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch", Integer, nullable=False, unique=True),
    Column("experiments_seen", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # open | done
    json_column("plan", nullable=False),  # [{architecture_id, action, rung, seeds, reason, posterior}]
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

# Migration 7 (stopping.py). Why `archscout run` stopped before its budget (a stopping rule).
study_stops = Table(
    "study_stops",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rule", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("experiments", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
