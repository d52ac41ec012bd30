"""The experiment state machine, stored in `experiments` with an append-only `experiment_events` log.

An experiment moves one step at a time along

    sampled -> proposed -> checked -> evaluated -> scored -> analyzed -> done

or to `failed` (with a reason) from any state that is not terminal. Each move validates the
transition, updates the row and appends an event; pass `conn=` from `db.transaction()` so that the
move commits together with the stage's own output (the architecture, runs, score...). A resumed
study continues every experiment `open_experiments()` returns from the state it recorded.

What is not here: what each stage does (loop.py) and which parent is sampled (pool.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from archscout.store import schema as s
from archscout.store.engine import lock_counter
from archscout.store.errors import InvalidTransition, NotFoundError
from archscout.store.rows import Experiment, ExperimentEvent



class Connections(Protocol):
    """What `Experiments` needs of the study database (`db.StudyDB` is one). A protocol rather than
    an import of StudyDB, because db.py imports this module: the two ran in an import cycle."""

    def reading(self, conn: Connection | None = None) -> AbstractContextManager[Connection]: ...

    def writing(self, conn: Connection | None = None) -> AbstractContextManager[Connection]: ...

    def fetch_one(self, stmt, conn: Connection | None): ...

    def fetch_all(self, stmt, conn: Connection | None) -> list: ...

STATES = ("sampled", "proposed", "checked", "evaluated", "scored", "analyzed", "done")
FAILED = "failed"
TERMINAL = ("done", FAILED)
# the columns a transition may set besides state and timestamps
FIELDS = (
    "architecture_id",
    "parent_id",
    "reference_ids",
    "failure_reason",
    "failure_message",
    "cost_usd",
    "probe_report",
)


def allowed_next(state: str) -> tuple[str, ...]:
    """The states `state` may move to."""
    if state in TERMINAL:
        return ()
    return (STATES[STATES.index(state) + 1], FAILED)


class Experiments:
    """Experiment rows of one study database; reached as `db.experiments`."""

    def __init__(self, db: Connections):
        self.db = db

    def next_seq(self, *, conn: Connection | None = None) -> int:
        """The number the next experiment will get (1 for the first)."""
        with self.db.reading(conn) as c:
            return c.execute(select(func.coalesce(func.max(s.experiments.c.seq), 0))).scalar_one() + 1

    def start(
        self,
        *,
        proposer: str,
        parent_id: int | None = None,
        reference_ids: list[int] | None = None,
        note: str = "",
        pool_version: int | None = None,
        conn: Connection | None = None,
    ) -> Experiment:
        """Create the next experiment in state `sampled` (its parent and references are chosen from
        pool version `pool_version`)."""
        now = s.utcnow()
        with self.db.writing(conn) as c:
            # computed inside the write transaction, with the counter locked (see lock_counter), so
            # two drivers never take the same number
            lock_counter(c, "experiments.seq")
            seq = self.next_seq(conn=c)
            values = dict(
                seq=seq,
                state=STATES[0],
                parent_id=parent_id,
                reference_ids=list(reference_ids or []),
                proposer=proposer,
                pool_version=pool_version,
                started_at=now,
                updated_at=now,
            )
            exp_id = c.execute(insert(s.experiments).values(**values)).inserted_primary_key[0]
            self._log(c, exp_id, STATES[0], now, note)
            return self.get(exp_id, conn=c)

    def advance(
        self,
        exp_id: int,
        new_state: str,
        *,
        note: str = "",
        conn: Connection | None = None,
        **fields: Any,
    ) -> Experiment:
        """Move an experiment to `new_state`, setting `fields` (see FIELDS) and logging an event.

        Raises `InvalidTransition` when the current state cannot reach `new_state`, and requires a
        `failure_reason` when `new_state` is `failed`.
        """
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"advance() cannot set {', '.join(sorted(unknown))}")
        if new_state == FAILED and not fields.get("failure_reason"):
            raise ValueError("moving to failed needs a failure_reason")
        t = s.experiments
        with self.db.writing(conn) as c:
            # FOR UPDATE locks the row on PostgreSQL; SQLite already holds the write lock
            row = c.execute(select(t.c.state).where(t.c.id == exp_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no experiment with id {exp_id}")
            if new_state not in allowed_next(row.state):
                raise InvalidTransition(
                    f"experiment {exp_id} cannot move from {row.state} to {new_state}"
                )
            now = s.utcnow()
            values = dict(fields, state=new_state, updated_at=now)
            if new_state in TERMINAL:
                values["finished_at"] = now
            c.execute(update(t).where(t.c.id == exp_id).values(**values))
            self._log(c, exp_id, new_state, now, note)
            return self.get(exp_id, conn=c)

    def revise(
        self, exp_id: int, architecture_id: int, note: str, *, conn: Connection | None = None
    ) -> Experiment:
        """Point an open experiment at a revised architecture without changing its state.

        The LLM agents revise a proposal inside one stage (a planner retry after a probe failure, a
        debugger fix after a failed training run); the earlier architecture keeps its failed run and
        the event log records why the experiment moved on to the new one.
        """
        t = s.experiments
        with self.db.writing(conn) as c:
            row = c.execute(select(t.c.state).where(t.c.id == exp_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no experiment with id {exp_id}")
            if row.state in TERMINAL:
                raise InvalidTransition(f"experiment {exp_id} is {row.state}; it cannot be revised")
            now = s.utcnow()
            c.execute(update(t).where(t.c.id == exp_id).values(architecture_id=architecture_id, updated_at=now))
            self._log(c, exp_id, row.state, now, note)
            return self.get(exp_id, conn=c)

    def record_probes(self, exp_id: int, report: dict, *, conn: Connection | None = None) -> None:
        """Store the passed probe report of the experiment's current file without a state change (a
        debugger's fix is probed in state `checked`; a resume then trains it without probing)."""
        t = s.experiments
        with self.db.writing(conn) as c:
            c.execute(update(t).where(t.c.id == exp_id).values(probe_report=report, updated_at=s.utcnow()))

    def fail(
        self, exp_id: int, reason: str, message: str = "", *, conn: Connection | None = None
    ) -> Experiment:
        """Move to `failed`; `reason` is a short key (counted by reason), `message` one line."""
        return self.advance(
            exp_id, FAILED, failure_reason=reason, failure_message=message, note=reason, conn=conn
        )

    def get(self, exp_id: int, *, conn: Connection | None = None) -> Experiment | None:
        row = self.db.fetch_one(select(s.experiments).where(s.experiments.c.id == exp_id), conn)
        return None if row is None else Experiment.model_validate(row._mapping)

    def by_seq(self, seq: int, *, conn: Connection | None = None) -> Experiment | None:
        row = self.db.fetch_one(select(s.experiments).where(s.experiments.c.seq == seq), conn)
        return None if row is None else Experiment.model_validate(row._mapping)

    def open_experiments(self, *, conn: Connection | None = None) -> list[Experiment]:
        """Experiments not yet done or failed, oldest first: what a resumed study must finish."""
        t = s.experiments
        stmt = select(t).where(t.c.state.not_in(TERMINAL)).order_by(t.c.seq)
        return [Experiment.model_validate(r._mapping) for r in self.db.fetch_all(stmt, conn)]

    def recent(self, limit: int = 50, *, conn: Connection | None = None) -> list[Experiment]:
        """The latest experiments, newest first (status pages)."""
        t = s.experiments
        stmt = select(t).order_by(t.c.seq.desc()).limit(limit)
        return [Experiment.model_validate(r._mapping) for r in self.db.fetch_all(stmt, conn)]

    def events(self, exp_id: int, *, conn: Connection | None = None) -> list[ExperimentEvent]:
        t = s.experiment_events
        stmt = select(t).where(t.c.experiment_id == exp_id).order_by(t.c.id)
        return [ExperimentEvent.model_validate(r._mapping) for r in self.db.fetch_all(stmt, conn)]

    def counts_by_state(self, *, conn: Connection | None = None) -> dict[str, int]:
        t = s.experiments
        stmt = select(t.c.state, func.count()).group_by(t.c.state)
        return {state: n for state, n in self.db.fetch_all(stmt, conn)}

    def counts_by_failure(self, *, conn: Connection | None = None) -> dict[str, int]:
        t = s.experiments
        stmt = (
            select(t.c.failure_reason, func.count())
            .where(t.c.state == FAILED)
            .group_by(t.c.failure_reason)
        )
        return {reason: n for reason, n in self.db.fetch_all(stmt, conn)}

    def _log(self, conn: Connection, exp_id: int, state: str, at, note: str) -> None:
        values = dict(experiment_id=exp_id, state=state, at=at, note=note)
        conn.execute(insert(s.experiment_events).values(**values))
