"""The study database (SQLAlchemy Core; SQLite in the study folder by default, PostgreSQL at scale)
and the candidate pool built on it. `open_study_db` is the entry point."""

from archscout.store.db import StudyDB, open_study_db
from archscout.store.errors import (
    InvalidTransition,
    NotFoundError,
    SchemaTooNewError,
    StoreError,
    StoreFullError,
    StoreLockedError,
)
from archscout.store.pool import PoolPolicy, init_pool, maybe_update, sample

__all__ = [
    "InvalidTransition",
    "NotFoundError",
    "PoolPolicy",
    "SchemaTooNewError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StudyDB",
    "init_pool",
    "maybe_update",
    "open_study_db",
    "sample",
]
