"""Fixtures: a study database on a real SQLite file, and on PostgreSQL when ARCHSCOUT_TEST_PG_URL
names a server (each test then gets its own schema, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

from archscout.store import open_study_db

PG_URL = os.environ.get("ARCHSCOUT_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def study_url(request, tmp_path):
    """Where a fresh study database lives: a file path for SQLite, a URL for PostgreSQL."""
    if request.param == "sqlite":
        yield tmp_path / "study.db"
        return
    if not PG_URL:
        pytest.skip("set ARCHSCOUT_TEST_PG_URL to run the store tests on PostgreSQL")
    schema = f"archscout_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


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
