"""Operational failures surface as StoreError subclasses with one line (SQLite-specific setups)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import create_engine, text

from archscout.store import StoreFullError, StoreLockedError, open_study_db


def test_wal_mode_and_pragmas_are_set(sqlite_db):
    with sqlite_db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30_000


def test_a_folder_gets_study_db_inside_it(tmp_path):
    open_study_db(tmp_path).close()
    assert (tmp_path / "study.db").exists()


def test_writer_blocked_past_the_busy_timeout_gets_store_locked(tmp_path):
    db = open_study_db(tmp_path, busy_timeout_ms=200)
    holder = sqlite3.connect(tmp_path / "study.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO studies (name, created_at, config) VALUES ('x', '2024-01-01', '{}')")
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as err:
            db.add_architecture("x = 1", name="x", origin="user")
        assert 0.15 < time.monotonic() - started < 10
        assert "locked" in str(err.value) and "\n" not in str(err.value)
        assert "study.db" in str(err.value)
        # WAL: readers are not blocked by the writer
        assert db.counts()["architectures"] == 0
    finally:
        holder.rollback()
        holder.close()
    assert db.add_architecture("x = 1", name="x", origin="user") == 1
    db.close()


def test_opening_an_up_to_date_study_does_not_wait_for_a_writer(tmp_path):
    open_study_db(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "study.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reader = open_study_db(tmp_path, busy_timeout_ms=100)
        assert reader.experiments.open_experiments() == []
        reader.close()
    finally:
        holder.rollback()
        holder.close()


def test_postgres_writer_blocked_past_the_lock_timeout_gets_store_locked(study_url):
    if not str(study_url).startswith("postgresql"):
        pytest.skip("PostgreSQL lock timeout (the SQLite case is tested above)")
    db = open_study_db(study_url, busy_timeout_ms=200)
    holder = create_engine(study_url)
    try:
        with holder.begin() as conn:
            conn.execute(text("LOCK TABLE architectures IN EXCLUSIVE MODE"))
            with pytest.raises(StoreLockedError) as err:
                db.add_architecture("x = 1", name="x", origin="user")
            assert "\n" not in str(err.value)
    finally:
        holder.dispose()
    assert db.add_architecture("x = 1", name="x", origin="user") >= 1
    db.close()


def test_a_full_database_gets_store_full(sqlite_db):
    with pytest.raises(StoreFullError) as err:
        with sqlite_db.transaction() as tx:
            pages = tx.execute(text("PRAGMA page_count")).scalar()
            # a size cap stands in for a full disk: SQLite reports both as SQLITE_FULL
            tx.execute(text(f"PRAGMA max_page_count = {pages + 2}"))
            sqlite_db.add_architecture("x" * 1_000_000, name="big", origin="user", conn=tx)
    assert "full" in str(err.value) and "\n" not in str(err.value)
    sqlite_db.engine.dispose()  # drop the capped connection
    assert sqlite_db.counts()["architectures"] == 0
