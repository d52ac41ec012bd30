"""Engine construction for the study database: where it lives, SQLite pragmas, error translation.

`make_engine` accepts a study folder, a path to a `.db` file, or any SQLAlchemy URL (PostgreSQL at
scale). For SQLite it installs connection hooks so that every connection runs in WAL mode with the
pragmas below, and so that transactions are real: the stdlib `sqlite3` driver otherwise skips BEGIN
before DDL and SELECT (see SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL").
For PostgreSQL it sets `lock_timeout` to the same busy timeout. For every backend it turns lock and
disk-full errors into `StoreError`s.

What is not here: the schema (schema.py), migrations (migrations.py) and queries (db.py).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import zlib

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine import URL, make_url

from archscout.store.errors import translate

DB_FILENAME = "study.db"
DEFAULT_BUSY_TIMEOUT_MS = 30_000
# execution option marking a connection that only reads, so its transaction need not take the
# SQLite write lock up front
READ_ONLY = "archscout_read_only"


def resolve_url(path_or_url: str | Path) -> URL:
    """A SQLAlchemy URL for a study folder, a database file, or a URL given as is."""
    text = str(path_or_url)
    if "://" in text:
        return make_url(text)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / DB_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(path.resolve()))


def lock_counter(conn: Connection, name: str) -> None:
    """Serialise, until `conn`'s transaction ends, every writer that hands out the next number of
    counter `name` (max + 1: experiment numbers, pool versions).

    On PostgreSQL two transactions would otherwise read the same maximum and one would fail on the
    unique index (seen with four concurrent drivers); a transaction-scoped advisory lock makes the
    second wait instead, and it is released on commit or rollback. SQLite needs nothing: a write
    transaction already holds the database's write lock from its BEGIN.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(f"archscout:{name}".encode())})


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def json_dumps(value) -> str:
    """JSON columns' serializer: NaN and infinities (an unknown statistic, e.g. the seed std of a
    single run) are stored as null. JSON has no NaN; PostgreSQL's json type refuses the token that
    Python writes for it, and SQLite would keep a value no other reader parses."""
    return json.dumps(_finite_or_none(value), allow_nan=False)


def make_engine(path_or_url: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    url = resolve_url(path_or_url)
    engine = create_engine(url, json_serializer=json_dumps)
    if engine.dialect.name == "sqlite":
        _install_sqlite_hooks(engine, busy_timeout_ms)
    elif engine.dialect.name == "postgresql":
        _install_postgres_hooks(engine, busy_timeout_ms)
    where = url.database if engine.dialect.name == "sqlite" else url.render_as_string(hide_password=True)

    @event.listens_for(engine, "handle_error")
    def _translate(ctx):
        return translate(ctx.original_exception, where)

    return engine


def make_read_only_engine(path_or_url: str | Path) -> Engine:
    """An engine that cannot write: a SQLite file opened with `mode=ro` (it can watch a study that a
    `run` is writing, through WAL), or PostgreSQL sessions set to read-only transactions, which the
    server enforces. For viewers (the dashboard); it never creates, migrates or switches journals."""
    if isinstance(path_or_url, str) and "://" in path_or_url:
        engine = create_engine(path_or_url)

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_conn.commit()

        return engine
    engine = create_engine(f"sqlite:///file:{path_or_url}?mode=ro&uri=true")

    @event.listens_for(engine, "connect")
    def _wait_for_writers(dbapi_conn, _record):
        # wait for the loop's short write transactions instead of failing with "database is locked"
        dbapi_conn.execute("PRAGMA busy_timeout = 5000")  # a page waits at most 5 s

    return engine


def _switch_to_wal(cur, busy_timeout_ms: int) -> None:
    """Switch a connection's database to WAL, retrying while another connection holds it.

    Converting a new database to WAL needs an exclusive lock, and SQLite can answer "database is
    locked" there without calling the busy handler (seen with several processes creating one study
    at once), so the busy timeout is honoured here by hand.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # we emit BEGIN ourselves (below); the driver's own transaction handling is switched off
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # busy_timeout first: switching to WAL needs a lock another process may briefly hold
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _switch_to_wal(cur, busy_timeout_ms)
        # NORMAL is durable across application crashes in WAL mode; only a power loss can drop
        # the last commits, which a resumable study tolerates
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock at BEGIN, where busy_timeout waits for it; a deferred
        # transaction that reads and then writes can instead fail at once with "database is locked"
        # when another writer committed in between. Readers never block writers in WAL mode.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _install_postgres_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # PostgreSQL waits for a row or table lock forever by default; lock_timeout gives it the
        # SQLite busy timeout's meaning. Set outside a transaction, since a rolled-back SET is undone.
        dbapi_conn.autocommit = True
        cur = dbapi_conn.cursor()
        cur.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        cur.close()
        dbapi_conn.autocommit = False
