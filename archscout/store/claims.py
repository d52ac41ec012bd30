"""Which driver works on which open experiment: an owner id and a lease on each experiment row.

Several drivers (`archscout run` on several machines against one PostgreSQL study, or twice on one
machine) each claim the open experiments they resume and the new ones they start. A claim is the
`owner` column plus `lease_until`; the driver renews its leases while it runs (`Claims.renewing`)
and releases them when it stops. Another driver may take an experiment over only when its lease has
expired, or when the owner is a process on this same host that no longer exists (a driver killed
with `kill -9` and started again at once need not wait for the lease).

Taking claims is atomic: on PostgreSQL the candidate rows are locked with
`SELECT ... FOR UPDATE SKIP LOCKED`, so two drivers claiming at the same moment split the rows
between them instead of queueing; on SQLite the write transaction (BEGIN IMMEDIATE, engine.py)
already serialises writers, and the UPDATE repeats the claimability condition so a row claimed in
between is never taken.

What is not here: what the driver does with its experiments (loop.py, parallel/driver.py).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psutil
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from archscout.store import schema as s
from archscout.store.experiments import TERMINAL
from archscout.store.rows import Experiment

DEFAULT_LEASE_S = 120.0


def this_process_owner(workers: int = 1) -> str:
    """`host:pid:start-time:random:workers`: unique per driver process, checkable on the same host,
    and telling `status` how many evaluations the driver may run at once."""
    proc = psutil.Process(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{int(proc.create_time())}:{uuid.uuid4().hex[:8]}:{workers}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` names a process on this host that no longer runs (pid gone or reused).
    Owners on other hosts are never judged dead here: only their lease expiry frees their rows."""
    parts = owner.split(":")
    if len(parts) not in (4, 5) or parts[0] != socket.gethostname():
        return False
    try:
        pid, started = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    try:
        return int(psutil.Process(pid).create_time()) != started
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def activity(db) -> dict:
    """What the live drivers are doing, from the claims alone (any machine can read it): drivers,
    their worker slots busy and idle, experiments in flight, and experiments finished per hour
    over the last hour."""
    t = s.experiments
    now = s.utcnow()
    held = db.fetch_all(select(t.c.owner).where(and_(
        t.c.state.not_in(TERMINAL), t.c.owner.is_not(None), t.c.lease_until >= now)), None)
    per_owner: dict[str, int] = {}
    for row in held:
        if not owner_is_dead(row.owner):
            per_owner[row.owner] = per_owner.get(row.owner, 0) + 1
    slots = sum(_workers_of(o) for o in per_owner)
    in_flight = sum(per_owner.values())
    recent = db.fetch_all(select(t.c.id).where(t.c.finished_at >= now - timedelta(hours=1)), None)
    return {"drivers": len(per_owner), "workers": slots, "busy": min(in_flight, slots),
            "idle": max(0, slots - in_flight), "in_flight": in_flight, "per_hour_last_hour": len(recent)}


def _workers_of(owner: str) -> int:
    parts = owner.split(":")
    return int(parts[4]) if len(parts) == 5 and parts[4].isdigit() else 1


class Claims:
    """One driver's claims on a study database (`db.StudyDB`)."""

    def __init__(self, db, owner: str | None = None, lease_s: float = DEFAULT_LEASE_S):
        self.db, self.owner, self.lease_s = db, owner or this_process_owner(), lease_s

    def _until(self):
        return s.utcnow() + timedelta(seconds=self.lease_s)

    def take(self, exp_id: int, *, conn: Connection | None = None) -> None:
        """Claim an experiment this driver has just created (its row is new: nobody else holds it)."""
        t = s.experiments
        with self.db.writing(conn) as c:
            c.execute(update(t).where(t.c.id == exp_id).values(owner=self.owner, lease_until=self._until()))

    def claim_open(self) -> list[Experiment]:
        """Claim every open experiment that is free (unowned, lease expired, owner dead, or ours);
        return them oldest first. Open experiments held by a live driver are left to it."""
        t = s.experiments
        now = s.utcnow()
        free = or_(t.c.owner.is_(None), t.c.lease_until < now, t.c.owner == self.owner)
        with self.db.transaction() as c:
            rows = c.execute(
                select(t.c.id, t.c.owner, t.c.lease_until).where(t.c.state.not_in(TERMINAL))
                .order_by(t.c.seq).with_for_update(skip_locked=True)
            ).all()
            ids = []
            for row in rows:
                expired = row.lease_until is None or row.lease_until < now
                if row.owner is None or expired or row.owner == self.owner or owner_is_dead(row.owner):
                    ids.append(row.id)
            for exp_id in ids:
                # the condition again (or the owner we judged dead): a row claimed since the SELECT
                # by a driver that did not lock it (SQLite readers) is not taken from it
                seen = next(r.owner for r in rows if r.id == exp_id)
                c.execute(
                    update(t).where(and_(t.c.id == exp_id, t.c.state.not_in(TERMINAL),
                                         or_(free, t.c.owner == seen)))
                    .values(owner=self.owner, lease_until=self._until())
                )
            mine = select(t).where(and_(t.c.owner == self.owner, t.c.state.not_in(TERMINAL))).order_by(t.c.seq)
            return [Experiment.model_validate(r._mapping) for r in c.execute(mine)]

    def renew(self) -> int:
        """Extend the lease of every open experiment this driver holds; return how many."""
        t = s.experiments
        with self.db.transaction() as c:
            done = c.execute(
                update(t).where(and_(t.c.owner == self.owner, t.c.state.not_in(TERMINAL)))
                .values(lease_until=self._until())
            )
            return done.rowcount

    def release(self) -> None:
        """Give up every claim (a driver stopping cleanly): another driver may resume at once."""
        t = s.experiments
        with self.db.transaction() as c:
            c.execute(update(t).where(t.c.owner == self.owner).values(owner=None, lease_until=None))

    def held_by_others(self) -> int:
        """Open experiments a live driver other than this one holds (left to it)."""
        t = s.experiments
        now = s.utcnow()
        stmt = select(t.c.owner).where(and_(
            t.c.state.not_in(TERMINAL), t.c.owner.is_not(None), t.c.owner != self.owner, t.c.lease_until >= now))
        return sum(1 for r in self.db.fetch_all(stmt, None) if not owner_is_dead(r.owner))

    @contextmanager
    def renewing(self) -> Iterator[Claims]:
        """Renew this driver's leases every third of the lease while the block runs; release them
        all when it ends (also on Ctrl-C: a clean stop need not wait for the lease)."""
        stop = threading.Event()

        def renew_forever():
            while not stop.wait(self.lease_s / 3):
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - a busy database: the next renewal tries again
                    pass

        thread = threading.Thread(target=renew_forever, name="archscout-lease", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            try:
                self.release()
            except Exception:  # noqa: BLE001 - leases expire on their own
                pass
