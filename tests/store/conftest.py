"""Fixtures: a study database on a real SQLite file, and on PostgreSQL when ARCHSCOUT_TEST_PG_URL
names a server (each test then gets its own schema, dropped afterwards: `pg_url` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from archscout.store import open_study_db


@pytest.fixture(params=["sqlite", "postgresql"])
def study_url(request, tmp_path):
    """Where a fresh study database lives: a file path for SQLite, a URL for PostgreSQL (its own
    schema, tests/conftest.py)."""
    if request.param == "sqlite":
        return tmp_path / "study.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(study_url):
    study_db = open_study_db(study_url)
    yield study_db
    study_db.close()


@pytest.fixture
def sqlite_db(tmp_path):
    study_db = open_study_db(tmp_path)
    yield study_db
    study_db.close()


@pytest.fixture
def add_arch():
    """Store an architecture with unique code; returns its id."""
    counter = iter(range(1_000_000))

    def add(db, parent_id=None, origin="offline", norm_hash=None, conn=None):
        n = next(counter)
        return db.add_architecture(
            f"class Mixer{n}: pass\n",
            name=f"mixer-{n}",
            origin=origin,
            norm_hash=norm_hash or f"norm-{n}",
            parent_id=parent_id,
            conn=conn,
        )

    return add
