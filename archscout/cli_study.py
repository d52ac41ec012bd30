"""Opening a study from a command: every way it can fail ends in one line (`ui.fail`, exit 2).

Shared by cli.py and the sub-command modules (import, recheck), which import it from here rather
than from cli.py (that import ran in a cycle). What opening a study does is `study.open_study`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from archscout.config import ConfigError
from archscout.ui import fail


def open_or_fail(study: Path, overrides: dict | None = None, create: bool = False, read: bool = False):
    """`read`: a read command (status, show, report), which must find an archscout study at this
    schema and never create or migrate one (checked read-only first, inputs.readable_study)."""
    from sqlalchemy.exc import DBAPIError

    from archscout.inputs import InputError, readable_study, study_folder
    from archscout.store.errors import StoreError
    from archscout.study import open_study

    try:
        readable_study(study) if read else study_folder(study)
        return open_study(study, overrides, create=create)
    except (ConfigError, StoreError, InputError) as err:
        fail(str(err))
    except DBAPIError as err:
        fail(f"{study}: the study database cannot be read ({err.orig})")


@contextmanager
def database_errors(study: Path):
    """A database that passed the checks but breaks while being read (damaged past its first
    pages) ends in one line too."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as err:
        fail(f"{study}: the study database cannot be read ({err.orig})")
