"""`archscout upgrade --study DIR`: apply the pending schema migrations to a study's database.

The read commands (`status`, `show`, `report`, `serve`) never write, so a study made by an older
archscout is upgraded here, once, on purpose; `run`, `add` and `verify` also upgrade as they open
it. A file that is not an archscout study is refused in one line, never given archscout's tables.
"""

from __future__ import annotations

from pathlib import Path

import typer

from archscout.config import ConfigError
from archscout.inputs import InputError, readable_study
from archscout.store.errors import StoreError


def upgrade_cmd(study: Path = typer.Option(Path("study"), "--study", help="study folder")) -> None:
    """Upgrade a study's database to this archscout's schema (read commands never migrate)."""
    from archscout.ui import console, fail
    from archscout.store.db import open_study_db
    from archscout.store.migrations import LATEST_VERSION
    from archscout.study import load_config

    try:
        readable_study(study, older_ok=True)
        open_study_db(load_config(study).db_url or study).close()
    except (InputError, StoreError, ConfigError) as err:
        fail(str(err))
    console.print(f"{study}: schema version {LATEST_VERSION}", highlight=False)
