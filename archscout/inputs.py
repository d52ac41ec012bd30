"""Checks on what a user hands the command line, each ending in one readable line (`InputError`)
before anything is written: candidate files (text, UTF-8, a UTF-8 name), study folders (a folder,
not a file; for the read commands an existing archscout study at this schema, opened read-only so
that `status`, `show`, `report` and `serve` never create, migrate or touch a database), ids, ports
and dashboard tokens.

What it does not check: the content of a candidate (the probes do that in the sandbox) or a
study's config fields (study.py validates those and names the field).
"""

from __future__ import annotations

import os
import sqlite3
import tomllib
from pathlib import Path
from urllib.parse import quote

from archscout.store.engine import DB_FILENAME
from archscout.store.migrations import LATEST_VERSION

CONFIG_NAME = "study.toml"
MAX_CANDIDATE_BYTES = 1 << 20  # a token mixer is a few hundred lines; anything this large is a mistake
MIN_TOKEN_CHARS = 16
SQLITE_MAX_INT = 2**63 - 1


class InputError(ValueError):
    """Bad input from the user; the message is one line."""


def shown(path: Path | str) -> str:
    """A path as one printable line, whatever bytes its name holds."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace").encode("unicode_escape").decode("ascii") \
        if any(b < 32 for b in raw) else raw.decode("utf-8", "backslashreplace")


def candidate_text(path: Path) -> str:
    """The text of a candidate file: an existing regular file with a UTF-8 name, UTF-8 content and
    no NUL bytes (a binary file or a Latin-1 one is refused, not decoded into garbage)."""
    path = Path(path)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the file name {shown(path)} is not valid UTF-8: rename the file") from None
    if not path.is_file():
        raise InputError(f"no such file: {shown(path)}")
    try:
        size = path.stat().st_size
        if size > MAX_CANDIDATE_BYTES:
            raise InputError(f"{shown(path)} is {size:,} bytes: not a candidate source file")
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {shown(path)}: {err.strerror}") from None
    if b"\0" in raw:
        raise InputError(f"{shown(path)} is a binary file, not Python source")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{shown(path)} is not UTF-8 text (byte {err.start}: "
                         f"{raw[err.start:err.start + 1]!r}); save it as UTF-8") from None


def study_folder(path: Path) -> Path:
    """A study path a command may create or open: a folder or nothing yet, never a file."""
    path = Path(path)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the study path {shown(path)} is not valid UTF-8") from None
    if path.exists() and not path.is_dir():
        raise InputError(f"--study {shown(path)} is a file, not a study folder")
    return path


def readable_study(folder: Path, *, older_ok: bool = False) -> Path:
    """An existing archscout study at this schema version, checked without writing anything: the
    database is opened read-only, so a random file, a truncated database or another program's
    SQLite file are refused here instead of being "upgraded"."""
    folder = study_folder(folder)
    url = _shared_db_url(folder)
    if url is not None:
        where, version = _shared_db_version(url)
        _check_version(where, version, folder, older_ok)
        return folder
    db = folder / DB_FILENAME
    if not db.is_file() or not (folder / CONFIG_NAME).is_file():
        raise InputError(f"no study in {shown(folder)} (start one with `archscout run --study "
                         f"{shown(folder)}`)")
    try:
        # without a -wal file everything is in the main file: `immutable` then reads it without
        # creating -wal/-shm files; with one (a study being run) the WAL must be read too
        live = db.with_name(db.name + "-wal").exists()
        mode = "mode=ro" if live else "mode=ro&immutable=1"
        con = sqlite3.connect(f"file:{quote(str(db.resolve()))}?{mode}", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = (con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
                       if "schema_migrations" in tables else None)
            if version is not None:
                problem = con.execute("PRAGMA quick_check(1)").fetchone()[0]
                if problem != "ok":
                    raise InputError(f"{shown(db)} is damaged ({problem}); restore it from a copy")
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise InputError(f"{shown(db)} is not a readable SQLite database ({err})") from None
    if version is None or not {"studies", "architectures", "runs"} <= tables:
        raise InputError(f"{shown(db)} is not an archscout study")
    _check_version(shown(db), version, folder, older_ok)
    return folder


def _check_version(where: str, version: int, folder: Path, older_ok: bool) -> None:
    if version > LATEST_VERSION:
        raise InputError(f"{where} was written by a newer archscout (schema {version} > "
                         f"{LATEST_VERSION}); upgrade archscout")
    if version < LATEST_VERSION and not older_ok:
        raise InputError(f"{where} is at schema version {version}, this archscout reads "
                         f"{LATEST_VERSION}; read commands never migrate: run `archscout upgrade "
                         f"--study {shown(folder)}` once")


def _shared_db_url(folder: Path) -> str | None:
    """The `db_url` of a study kept in a shared database, None for a study.db in the folder."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text()).get("db_url")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{shown(path)} is not valid TOML ({err})") from None


def _shared_db_version(url: str) -> tuple[str, int]:
    """The schema version of the study in a shared database, read without writing anything."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    where = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if not {"schema_migrations", "studies", "architectures", "runs"} <= tables:
                raise InputError(f"{where} holds no archscout study")
            return where, conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar_one()
    except SQLAlchemyError as err:
        raise InputError(f"{where}: the study database cannot be reached ({str(err).splitlines()[0]})") from None
    finally:
        engine.dispose()


def architecture_id(value: int) -> int:
    if not 0 < value <= SQLITE_MAX_INT:
        raise InputError(f"no architecture #{value}: ids are positive integers below 2^63")
    return value


def port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise InputError(f"--port {value} is not a TCP port (1-65535)")
    return value


def token(value: str) -> str:
    if len(value.strip()) < MIN_TOKEN_CHARS or value != value.strip():
        raise InputError(f"--token must be at least {MIN_TOKEN_CHARS} characters without spaces "
                         f"(omit it to get a random one)")
    return value
