"""The study database: one `StudyDB` per study, with small repository functions over `schema.py`.

It stores what the loop produces — the study's config, architectures and their lineage, runs (several
per architecture: seeds, stages, presets), scores, analyses and versions of the candidate pool — and
the experiment state machine (`db.experiments`, see experiments.py). It does not decide anything:
which parent to sample and when to re-rank the pool is policy, in pool.py.

Transactions. Every function opens its own transaction unless given `conn=`; to make several
writes one commit (store the architecture *and* move the experiment to `proposed`), open
`with db.transaction() as tx:` and pass `conn=tx` to each call. On SQLite, writing transactions begin
IMMEDIATE so concurrent writers queue on the busy timeout instead of failing mid-transaction.

Idempotence, which resume relies on:
- `add_architecture` on code already stored returns the existing id (the code hash is unique).
- `add_run` on an existing (architecture, stage, preset, seed) replaces that row: the newer result
  is the complete one (a re-run after an interrupted evaluation or a fixed bug), and the run keeps
  its id.
- `add_score` on an existing (architecture, stage, preset) replaces it likewise (re-scoring after
  the baseline's reference runs change).

Reads for many architectures at once (`parent_ids`, `scored_children`, `ok_run_keys`, `runs_by_id`,
and views.py's) are set-based: one query per IN list of at most IN_CHUNK ids, not one per
architecture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from archscout.records import RunResult, code_hash
from archscout.store import schema as s
from archscout.store.engine import DEFAULT_BUSY_TIMEOUT_MS, READ_ONLY, lock_counter, make_engine
from archscout.store.errors import StoreError
from archscout.store.experiments import Experiments
from archscout.store.migrations import upgrade
from archscout.store.rows import Analysis, Architecture, PoolMember, PoolVersion, Run, Score, Study


def open_study_db(
    path_or_url: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> StudyDB:
    """Open (creating or upgrading) the study database at a study folder, a file or a URL.

    An existing folder gets `study.db` inside it; any other path is the database file itself.
    Raises `SchemaTooNewError` for a database from a newer archscout. `busy_timeout_ms` is how long
    a write waits for another writer (SQLite busy timeout, PostgreSQL lock_timeout) before
    `StoreLockedError`.
    """
    engine = make_engine(path_or_url, busy_timeout_ms=busy_timeout_ms)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return StudyDB(engine)


# bound parameters per IN (...) list: under SQLite's oldest limit of 999 variables per statement
IN_CHUNK = 500
def chunks(ids: Sequence[int], size: int = IN_CHUNK) -> Iterator[Sequence[int]]:
    """`ids` in slices short enough for one IN (...) list."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class RunKey(NamedTuple):
    """Which run, and which version of it (its `created_at`), without its result."""

    id: int
    architecture_id: int
    stage: str
    preset: str
    seed: int
    created_at: datetime


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


class StudyDB:
    """Repository over one study database; `db.experiments` holds the experiment state machine and
    `db.ledger` the LLM calls."""

    def __init__(self, engine: Engine):
        from archscout.store.ledger import Ledger

        self.engine = engine
        self.experiments = Experiments(self)
        self.ledger = Ledger(self)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StudyDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; pass the yielded connection as `conn=` to group writes."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def writing(self, conn: Connection | None = None) -> Iterator[Connection]:
        """The caller's transaction when given, else a new write transaction committed on exit."""
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as own:
            yield own

    @contextmanager
    def reading(self, conn: Connection | None = None) -> Iterator[Connection]:
        """The caller's connection when given, else a read transaction (no SQLite write lock)."""
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as own:
            own.execution_options(**{READ_ONLY: True})
            yield own

    def fetch_one(self, stmt, conn: Connection | None):
        with self.reading(conn) as c:
            return c.execute(stmt).first()

    def fetch_all(self, stmt, conn: Connection | None) -> list:
        with self.reading(conn) as c:
            return list(c.execute(stmt))

    def upsert(
        self,
        conn: Connection,
        table: Table,
        values: dict[str, Any],
        key: Sequence[str],
        replace: bool,
    ) -> int:
        """Insert a row, or on a clash of the unique `key` replace it (or keep it); return its id."""
        if conn.dialect.name in ("sqlite", "postgresql"):
            dialect_insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            stmt = dialect_insert(table).values(**values)
            if replace:
                changes = {k: v for k, v in values.items() if k not in key}
                stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=changes)
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
            row = conn.execute(stmt.returning(table.c.id)).first()
            if row is not None:
                return row.id
        where = [table.c[k] == values[k] for k in key]
        existing = conn.execute(select(table.c.id).where(*where)).first()
        if existing is None:
            return conn.execute(insert(table).values(**values)).inserted_primary_key[0]
        if replace:
            conn.execute(update(table).where(table.c.id == existing.id).values(**values))
        return existing.id

    # -- study -----------------------------------------------------------------------------------

    def create_study(self, name: str, config: dict[str, Any], *, conn: Connection | None = None) -> Study:
        """Record the study (one per database) with its config snapshot."""
        with self.writing(conn) as c:
            if c.execute(select(s.studies.c.id)).first() is not None:
                raise StoreError("this database already holds a study")
            c.execute(insert(s.studies).values(name=name, config=config, created_at=s.utcnow()))
            return Study.model_validate(c.execute(select(s.studies)).one()._mapping)

    def study(self, *, conn: Connection | None = None) -> Study | None:
        row = self.fetch_one(select(s.studies).order_by(s.studies.c.id).limit(1), conn)
        return None if row is None else Study.model_validate(row._mapping)

    def set_config(self, config: dict[str, Any], *, conn: Connection | None = None) -> None:
        with self.writing(conn) as c:
            if c.execute(update(s.studies).values(config=config)).rowcount == 0:
                raise StoreError("no study recorded yet; create_study() first")

    # -- architectures ---------------------------------------------------------------------------

    def add_architecture(
        self,
        code: str,
        *,
        name: str,
        origin: str,
        norm_hash: str | None = None,
        parent_id: int | None = None,
        motivation: str = "",
        genome: dict[str, Any] | None = None,
        experiment_id: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Store a candidate's code; returns its id (the existing one if this exact code is stored)."""
        _check(origin, s.ORIGINS, "origin")
        values = dict(
            name=name,
            parent_id=parent_id,
            code=code,
            code_hash=code_hash(code),
            norm_hash=norm_hash,
            motivation=motivation,
            origin=origin,
            genome=genome,
            experiment_id=experiment_id,
            created_at=s.utcnow(),
        )
        with self.writing(conn) as c:
            return self.upsert(c, s.architectures, values, key=["code_hash"], replace=False)

    def architecture(self, arch_id: int, *, conn: Connection | None = None) -> Architecture | None:
        row = self.fetch_one(select(s.architectures).where(s.architectures.c.id == arch_id), conn)
        return None if row is None else Architecture.model_validate(row._mapping)

    def architecture_by_code_hash(
        self, code_hash_: str, *, conn: Connection | None = None
    ) -> Architecture | None:
        row = self.fetch_one(select(s.architectures).where(s.architectures.c.code_hash == code_hash_), conn)
        return None if row is None else Architecture.model_validate(row._mapping)

    def architectures_by_norm_hash(
        self, norm_hash: str, *, conn: Connection | None = None
    ) -> list[Architecture]:
        """Architectures whose normalised code is the same (novelty: a non-empty list means seen)."""
        stmt = (
            select(s.architectures)
            .where(s.architectures.c.norm_hash == norm_hash)
            .order_by(s.architectures.c.id)
        )
        return [Architecture.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    def architectures_by_origin(self, origin: str, *, conn: Connection | None = None) -> list[Architecture]:
        stmt = select(s.architectures).where(s.architectures.c.origin == origin).order_by(s.architectures.c.id)
        return [Architecture.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    def children_of(self, arch_id: int, *, conn: Connection | None = None) -> list[Architecture]:
        stmt = (
            select(s.architectures)
            .where(s.architectures.c.parent_id == arch_id)
            .order_by(s.architectures.c.id)
        )
        return [Architecture.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    def parent_ids(self, arch_ids: Iterable[int], *, conn: Connection | None = None) -> dict[int, int | None]:
        """{id: parent id} of the stored architectures among `arch_ids` (the parent is read fresh:
        an import may link it after the architecture was stored)."""
        t = s.architectures
        ids = list(dict.fromkeys(arch_ids))
        out: dict[int, int | None] = {}
        with self.reading(conn) as c:
            for part in chunks(ids):
                out.update((r.id, r.parent_id) for r in c.execute(select(t.c.id, t.c.parent_id).where(t.c.id.in_(part))))
        return out

    def scored_children(
        self, arch_id: int, stage: str, preset: str, *, conn: Connection | None = None
    ) -> list[int]:
        """Ids of `arch_id`'s children that have a score at (stage, preset), in id order (the
        analyst's siblings: one indexed join instead of every child's rows)."""
        a, sc = s.architectures, s.scores
        stmt = (
            select(a.c.id)
            .join(sc, (sc.c.architecture_id == a.c.id) & (sc.c.stage == stage) & (sc.c.preset == preset))
            .where(a.c.parent_id == arch_id)
            .order_by(a.c.id)
        )
        return [r.id for r in self.fetch_all(stmt, conn)]

    def all_motivations(self, *, conn: Connection | None = None) -> list[tuple[int, str]]:
        """(id, motivation) of every architecture with one, oldest first: rebuilds the novelty index."""
        t = s.architectures
        stmt = select(t.c.id, t.c.motivation).where(t.c.motivation != "").order_by(t.c.id)
        return [(r.id, r.motivation) for r in self.fetch_all(stmt, conn)]

    # -- runs ------------------------------------------------------------------------------------

    def add_run(
        self, architecture_id: int, stage: str, result: RunResult, *, conn: Connection | None = None
    ) -> int:
        """Store one evaluation; replaces the row with the same (architecture, stage, preset, seed)."""
        _check(stage, s.STAGES, "stage")
        _check(result.status, s.RUN_STATUSES, "status")
        values = dict(
            architecture_id=architecture_id,
            stage=stage,
            preset=result.preset,
            seed=result.seed,
            status=result.status,
            failure_kind=result.failure.kind.value if result.failure else None,
            val_loss=result.val_loss,
            benchmark=result.benchmark,
            params=result.params,
            tokens_per_s=result.tokens_per_s,
            wall_s=result.wall_s.get("total"),
            result=result.model_dump(mode="json"),
            created_at=s.utcnow(),
        )
        key = ["architecture_id", "stage", "preset", "seed"]
        with self.writing(conn) as c:
            return self.upsert(c, s.runs, values, key=key, replace=True)

    def runs_for(
        self,
        architecture_id: int,
        stage: str | None = None,
        preset: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> list[Run]:
        t = s.runs
        stmt = select(t).where(t.c.architecture_id == architecture_id)
        if stage is not None:
            stmt = stmt.where(t.c.stage == stage)
        if preset is not None:
            stmt = stmt.where(t.c.preset == preset)
        stmt = stmt.order_by(t.c.stage, t.c.preset, t.c.seed)
        return [Run.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    def ok_run_keys(
        self,
        arch_ids: Iterable[int],
        stages: Sequence[str],
        presets: Sequence[str],
        *,
        conn: Connection | None = None,
    ) -> dict[int, list[RunKey]]:
        """{architecture id: the keys of its ok runs with a val loss at any of `stages` and
        `presets`}, each list in runs_for's order (stage, preset, seed), without the results: what
        the posterior needs to tell which runs it has already scored, in one set-based query per
        IN-list chunk. A replaced run keeps its id and gets a new `created_at`."""
        t = s.runs
        ids = sorted(set(arch_ids))
        out: dict[int, list[RunKey]] = {}
        if not ids or not stages or not presets:
            return out
        cols = (t.c.id, t.c.architecture_id, t.c.stage, t.c.preset, t.c.seed, t.c.created_at)
        with self.reading(conn) as c:
            for part in chunks(ids):
                stmt = (
                    select(*cols)
                    .where(t.c.architecture_id.in_(part), t.c.stage.in_(list(stages)),
                           t.c.preset.in_(list(presets)), t.c.status == "ok", t.c.val_loss.is_not(None))
                    .order_by(t.c.architecture_id, t.c.stage, t.c.preset, t.c.seed)
                )
                for r in c.execute(stmt):
                    out.setdefault(r.architecture_id, []).append(RunKey(*r))
        return out

    def runs_by_id(self, run_ids: Iterable[int], *, conn: Connection | None = None) -> dict[int, Run]:
        """{id: run} of the stored runs among `run_ids`."""
        t = s.runs
        ids = sorted(set(run_ids))
        out: dict[int, Run] = {}
        with self.reading(conn) as c:
            for part in chunks(ids):
                for r in c.execute(select(t).where(t.c.id.in_(part))):
                    out[r.id] = Run.model_validate(r._mapping)
        return out

    def architectures_with_runs(self, stage: str, preset: str, *, conn: Connection | None = None) -> list[int]:
        """Ids of architectures with at least one run at (stage, preset), in id order."""
        t = s.runs
        stmt = select(t.c.architecture_id).where(t.c.stage == stage, t.c.preset == preset).distinct()
        return sorted(r.architecture_id for r in self.fetch_all(stmt, conn))

    def run_timeline(self, *, conn: Connection | None = None) -> list[Run]:
        """Every run in the order it was stored (for compute-vs-discoveries curves)."""
        stmt = select(s.runs).order_by(s.runs.c.created_at, s.runs.c.id)
        return [Run.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    # -- scores ----------------------------------------------------------------------------------

    def add_score(
        self,
        architecture_id: int,
        stage: str,
        preset: str,
        fitness: float,
        components: dict[str, Any],
        baseline_ref: dict[str, Any] | None = None,
        *,
        conn: Connection | None = None,
    ) -> int:
        """Store a fitness; replaces the row with the same (architecture, stage, preset)."""
        _check(stage, s.STAGES, "stage")
        values = dict(
            architecture_id=architecture_id,
            stage=stage,
            preset=preset,
            fitness=float(fitness),
            components=components,
            baseline_ref=baseline_ref,
            created_at=s.utcnow(),
        )
        key = ["architecture_id", "stage", "preset"]
        with self.writing(conn) as c:
            return self.upsert(c, s.scores, values, key=key, replace=True)

    def score(
        self, architecture_id: int, stage: str, preset: str, *, conn: Connection | None = None
    ) -> Score | None:
        t = s.scores
        stmt = select(t).where(
            t.c.architecture_id == architecture_id, t.c.stage == stage, t.c.preset == preset
        )
        row = self.fetch_one(stmt, conn)
        return None if row is None else Score.model_validate(row._mapping)

    def _ranked(self, stage: str, preset: str):
        # the column order of ix_scores_rank, so the ORDER BY is a walk along that index
        t = s.scores
        return (
            select(t.c.architecture_id, t.c.fitness)
            .where(t.c.stage == stage, t.c.preset == preset)
            .order_by(t.c.fitness.desc(), t.c.architecture_id)
        )

    def top_scores(
        self, stage: str, preset: str, limit: int, *, conn: Connection | None = None
    ) -> list[tuple[int, float]]:
        """The `limit` best (architecture_id, fitness) of one stage and preset, best first."""
        rows = self.fetch_all(self._ranked(stage, preset).limit(limit), conn)
        return [(r.architecture_id, r.fitness) for r in rows]

    def count_scored(self, stage: str, preset: str, *, conn: Connection | None = None) -> int:
        t = s.scores
        stmt = select(func.count()).select_from(t).where(t.c.stage == stage, t.c.preset == preset)
        with self.reading(conn) as c:
            return c.execute(stmt).scalar_one()

    def scored_at_rank(
        self, stage: str, preset: str, offset: int, *, conn: Connection | None = None
    ) -> int | None:
        """The architecture id at 0-based rank `offset` (an index walk, not a table load)."""
        row = self.fetch_one(self._ranked(stage, preset).limit(1).offset(offset), conn)
        return None if row is None else row.architecture_id

    def score_id_range(self, *, conn: Connection | None = None) -> tuple[int | None, int | None]:
        """The smallest and largest score id (None, None when there are no scores)."""
        t = s.scores
        # two scalar subqueries: SQLite answers a lone min() or max() from the end of the primary
        # key, but scans the table for both in one SELECT
        stmt = select(
            select(func.min(t.c.id)).scalar_subquery(), select(func.max(t.c.id)).scalar_subquery()
        )
        with self.reading(conn) as c:
            return tuple(c.execute(stmt).one())

    def scored_architecture(
        self, score_id: int, stage: str, preset: str, *, conn: Connection | None = None
    ) -> int | None:
        """The architecture of score `score_id` if that score is at `stage` and `preset`."""
        t = s.scores
        stmt = select(t.c.architecture_id).where(
            t.c.id == score_id, t.c.stage == stage, t.c.preset == preset
        )
        row = self.fetch_one(stmt, conn)
        return None if row is None else row.architecture_id

    def fitness_of(
        self, arch_ids: Iterable[int], stage: str, preset: str, *, conn: Connection | None = None
    ) -> dict[int, float]:
        t = s.scores
        ids = list(arch_ids)
        stmt = select(t.c.architecture_id, t.c.fitness).where(
            t.c.architecture_id.in_(ids), t.c.stage == stage, t.c.preset == preset
        )
        return {r.architecture_id: r.fitness for r in self.fetch_all(stmt, conn)}

    # -- analyses --------------------------------------------------------------------------------

    def add_analysis(
        self,
        architecture_id: int,
        kind: str,
        text: str,
        numbers: dict[str, Any] | None = None,
        *,
        conn: Connection | None = None,
    ) -> int:
        _check(kind, s.ANALYSIS_KINDS, "analysis kind")
        values = dict(
            architecture_id=architecture_id,
            kind=kind,
            text=text,
            numbers=numbers,
            created_at=s.utcnow(),
        )
        with self.writing(conn) as c:
            return c.execute(insert(s.analyses).values(**values)).inserted_primary_key[0]

    def analyses_for(
        self, architecture_id: int, kind: str | None = None, *, conn: Connection | None = None
    ) -> list[Analysis]:
        """Analyses of an architecture, oldest first."""
        t = s.analyses
        stmt = select(t).where(t.c.architecture_id == architecture_id)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        stmt = stmt.order_by(t.c.id)
        return [Analysis.model_validate(r._mapping) for r in self.fetch_all(stmt, conn)]

    # -- pool versions ---------------------------------------------------------------------------

    def latest_pool_version(self, *, conn: Connection | None = None) -> PoolVersion | None:
        t = s.pool_versions
        row = self.fetch_one(select(t).order_by(t.c.version.desc()).limit(1), conn)
        return None if row is None else _pool_version(row)

    def pool_version(self, version: int, *, conn: Connection | None = None) -> PoolVersion | None:
        t = s.pool_versions
        row = self.fetch_one(select(t).where(t.c.version == version), conn)
        return None if row is None else _pool_version(row)

    def save_pool_version(
        self,
        members: Sequence[tuple[int, float | None] | tuple[int, float | None, float | None]],
        experiments_seen: int,
        *,
        conn: Connection | None = None,
    ) -> PoolVersion:
        """Store the next pool version; `members` are (architecture_id, fitness[, posterior sd]), best
        first (the sd, when ranked by posterior, is what Thompson sampling draws with)."""
        t = s.pool_versions
        with self.writing(conn) as c:
            lock_counter(c, "pool_versions.version")
            latest = c.execute(select(func.coalesce(func.max(t.c.version), 0))).scalar_one()
            values = dict(
                version=latest + 1,
                created_at=s.utcnow(),
                experiments_seen=experiments_seen,
                members=[[int(m[0]), *(None if v is None else float(v) for v in m[1:])] for m in members],
            )
            c.execute(insert(t).values(**values))
            return _pool_version(c.execute(select(t).where(t.c.version == latest + 1)).one())

    # -- status ----------------------------------------------------------------------------------

    def counts(self, *, conn: Connection | None = None) -> dict[str, int]:
        """Row counts for `archscout status` (runs split by status)."""
        tables = {
            "architectures": s.architectures,
            "scores": s.scores,
            "analyses": s.analyses,
            "experiments": s.experiments,
            "pool_versions": s.pool_versions,
        }
        with self.reading(conn) as c:
            out = {
                name: c.execute(select(func.count()).select_from(t)).scalar_one()
                for name, t in tables.items()
            }
            by_status = c.execute(select(s.runs.c.status, func.count()).group_by(s.runs.c.status))
            runs = dict(by_status.all())
        out["runs_ok"] = runs.get("ok", 0)
        out["runs_failed"] = runs.get("failed", 0)
        out["runs"] = out["runs_ok"] + out["runs_failed"]
        return out


def _pool_version(row) -> PoolVersion:
    members = [PoolMember(architecture_id=a, fitness=f, sd=rest[0] if rest else None) for a, f, *rest in row.members]
    return PoolVersion(
        version=row.version,
        created_at=row.created_at,
        experiments_seen=row.experiments_seen,
        members=members,
    )
