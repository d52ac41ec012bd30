"""Fixtures shared across test folders: a throw-away schema on the PostgreSQL server named by
ARCHSCOUT_TEST_PG_URL (`.ci/run` starts one; tests that need it skip, saying why, without it), and a
presets file with a costlier second rung for the ladder tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
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


@pytest.fixture
def smoke_big_presets(tmp_path: Path) -> Path:
    """A presets file with smoke_big: the smoke preset trained 50 % longer (a costlier second rung)."""
    text = Path(__import__("archscout").__file__).with_name("presets.toml").read_text()
    block = text.split("[preset.smoke]")[1].split("# ----")[0]
    block = block.replace("[[preset.smoke.tasks]]", "[[preset.smoke_big.tasks]]").replace("steps = 12", "steps = 18")
    path = tmp_path / "presets.toml"
    path.write_text("[preset.smoke_big]" + block)
    return path
