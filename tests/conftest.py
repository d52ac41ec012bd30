"""Fixtures shared across test folders: a throw-away schema on the PostgreSQL server named by
ARCHSCOUT_TEST_PG_URL (`.ci/run` starts one); tests that need it skip, saying why, without it."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

PG_URL = os.environ.get("ARCHSCOUT_TEST_PG_URL")


@pytest.fixture
def pg_url():
    """A URL whose connections see only a fresh schema of their own, dropped afterwards."""
    if not PG_URL:
        pytest.skip("set ARCHSCOUT_TEST_PG_URL to run the PostgreSQL copies of the tests")
    schema = f"archscout_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()
