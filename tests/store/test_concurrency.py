"""Several writers on one study at once (drivers on several machines sharing a PostgreSQL study, or
processes sharing a SQLite file): the numbers a study hands out — experiment sequence numbers and
pool versions — stay unique and gapless, and no writer fails for another's sake."""

from __future__ import annotations

import threading

from archscout.store import open_study_db

WRITERS = 4
EACH = 5


def _race(study_url, work):
    """Run `work(db)` EACH times in each of WRITERS threads, every thread with its own connection
    pool (as separate processes would have), released together; returns what the calls returned
    and the errors raised."""
    dbs = [open_study_db(study_url) for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    results, errors = [], []

    def writer(db):
        barrier.wait()
        for _ in range(EACH):
            try:
                results.append(work(db))
            except Exception as err:  # noqa: BLE001 - any failure is what the test reports
                errors.append(repr(err))

    threads = [threading.Thread(target=writer, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.close()
    return results, errors


def test_concurrent_writers_get_distinct_experiment_numbers(study_url):
    open_study_db(study_url).close()  # created and migrated once, as a study's first driver does
    seqs, errors = _race(study_url, lambda db: db.experiments.start(proposer="offline").seq)
    assert errors == []
    assert sorted(seqs) == list(range(1, WRITERS * EACH + 1))


def test_concurrent_writers_get_distinct_pool_versions(study_url):
    open_study_db(study_url).close()
    versions, errors = _race(study_url, lambda db: db.save_pool_version([], experiments_seen=0).version)
    assert errors == []
    assert sorted(versions) == list(range(1, WRITERS * EACH + 1))
