"""Open a study for the dashboard without ever writing to it.

`open_study` in archscout/study.py creates folders, runs migrations and switches SQLite to WAL; a
viewer must do none of that. Here the SQLite file is opened with `mode=ro`, so the dashboard cannot
change the study even by a bug, and it can watch a study that `archscout run` is writing (WAL lets
readers and one writer work at once). A database that needs a migration is refused with a hint,
because upgrading it would be a write. A study kept in a shared PostgreSQL database (`db_url`) is
read through sessions set to read-only transactions, which the server itself enforces.
"""

from __future__ import annotations

from pathlib import Path

from archscout.config import ConfigError, get_preset
from archscout.store.db import StudyDB
from archscout.store.engine import DB_FILENAME, make_read_only_engine
from archscout.store.migrations import LATEST_VERSION, current_version
from archscout.study import CONFIG_NAME, StudyHandle, load_config


class StudyUnavailable(Exception):
    """The folder holds no study this dashboard can read."""


def open_readonly(folder: str | Path) -> StudyHandle:
    folder = Path(folder).expanduser().resolve()
    db_path = folder / DB_FILENAME
    if not (folder / CONFIG_NAME).is_file():
        raise StudyUnavailable(f"no study in {folder} (start one with `archscout run --study {folder}`)")
    config = load_config(folder)
    if config.db_url is None and not db_path.is_file():
        raise StudyUnavailable(f"no study in {folder} (start one with `archscout run --study {folder}`)")
    extra = config.presets_file
    try:
        preset = get_preset(config.preset, None if extra is None else Path(extra))
    except (ConfigError, ValueError) as err:
        raise StudyUnavailable(str(err)) from None
    engine = make_read_only_engine(config.db_url or db_path)

    with engine.connect() as conn:
        version = current_version(conn)
    if version != LATEST_VERSION:
        engine.dispose()
        raise StudyUnavailable(
            f"{'the study database' if config.db_url else db_path} is at schema version {version}, this archscout reads {LATEST_VERSION}; "
            f"run `archscout upgrade --study {folder}` once"
        )
    return StudyHandle(folder, config, preset, StudyDB(engine))
