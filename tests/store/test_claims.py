"""Claims on open experiments (store/claims.py), on SQLite and PostgreSQL: two drivers on one study
never hold the same experiment; an expired lease, or a dead owner on this host, is taken over; a
clean stop releases; claiming at the same moment splits the rows instead of sharing them."""

from __future__ import annotations

import socket
import threading

from archscout.store import open_study_db
from archscout.store.claims import Claims, owner_is_dead, this_process_owner


def _open_experiments(db, n):
    return [db.experiments.start(proposer="offline").id for _ in range(n)]


def test_a_live_drivers_experiments_are_not_resumed_by_another(db):
    ids = _open_experiments(db, 3)
    a, b = Claims(db, owner="host-a:1:1:aaaa"), Claims(db, owner="host-b:1:1:bbbb")
    assert [e.id for e in a.claim_open()] == ids
    assert b.claim_open() == []
    assert b.held_by_others() == 3
    # a driver that claims again (a resume inside one process) keeps its own
    assert [e.id for e in a.claim_open()] == ids
    # finished experiments are never claimed
    db.experiments.fail(ids[0], "timeout")
    a.release()
    assert [e.id for e in b.claim_open()] == ids[1:]
    assert {db.experiments.get(i).owner for i in ids[1:]} == {b.owner}


def test_an_expired_lease_is_taken_over(db):
    ids = _open_experiments(db, 2)
    # a lease that is already over: the driver stopped renewing (killed on another machine)
    gone = Claims(db, owner="elsewhere:1:1:dead", lease_s=-60)
    assert len(gone.claim_open()) == 2
    other = Claims(db, owner="host-b:1:1:bbbb")
    assert [e.id for e in other.claim_open()] == ids
    # renewing only touches one's own rows
    assert gone.renew() == 0
    assert other.renew() == 2


def test_a_dead_owner_on_this_host_is_taken_over_at_once(db):
    ids = _open_experiments(db, 1)
    # pid 2**22 + 1 is above Linux's pid_max: no such process can be running
    dead = f"{socket.gethostname()}:{2**22 + 1}:1:dead"
    assert owner_is_dead(dead)
    assert not owner_is_dead(this_process_owner())
    assert not owner_is_dead("another-host:1:1:x")  # only its lease can free another host's rows
    Claims(db, owner=dead).claim_open()
    mine = Claims(db)
    assert [e.id for e in mine.claim_open()] == ids


def test_renewing_block_releases_on_exit(db):
    ids = _open_experiments(db, 2)
    claims = Claims(db, owner="host-a:1:1:aaaa")
    with claims.renewing():
        claims.claim_open()
        assert {db.experiments.get(i).owner for i in ids} == {claims.owner}
    assert {db.experiments.get(i).owner for i in ids} == {None}


def test_drivers_claiming_at_once_split_the_experiments(study_url):
    setup = open_study_db(study_url)
    ids = _open_experiments(setup, 12)
    setup.close()
    drivers = 4
    dbs = [open_study_db(study_url) for _ in range(drivers)]
    barrier = threading.Barrier(drivers)
    got: dict[int, list[int]] = {}
    errors = []

    def claim(i, db):
        barrier.wait()
        try:
            got[i] = [e.id for e in Claims(db, owner=f"host-{i}:1:1:x{i}").claim_open()]
        except Exception as err:  # noqa: BLE001 - reported by the assertion
            errors.append(repr(err))

    threads = [threading.Thread(target=claim, args=(i, db)) for i, db in enumerate(dbs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.close()
    assert errors == []
    claimed = [i for ids_ in got.values() for i in ids_]
    assert sorted(claimed) == ids, "an experiment claimed twice or not at all"
