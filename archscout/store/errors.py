"""Errors the study database raises, and the mapping from driver errors to them.

The loop catches `StoreError` to stop cleanly with one readable line; everything here is a subclass
of it. The mapping covers the two operational failures a long study meets in practice (another
process holding the write lock past the busy timeout, and a full disk) for SQLite and PostgreSQL.
Programming errors (integrity violations, bad SQL) are deliberately not translated: they are bugs
and should surface with their full SQLAlchemy traceback.
"""

from __future__ import annotations

# SQLSTATE codes PostgreSQL uses for the same two conditions
_PG_LOCKED = {"55P03", "40P01"}  # lock_not_available (lock_timeout), deadlock_detected
_PG_FULL = {"53100"}  # disk_full


class StoreError(Exception):
    """Base class: the study database cannot do what was asked."""


class StoreLockedError(StoreError):
    """Another process held the database longer than the busy timeout."""


class StoreFullError(StoreError):
    """The disk (or a configured size limit) has no room for the write."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer archscout whose schema this code does not know."""


class InvalidTransition(StoreError):
    """An experiment was asked to move to a state its current state cannot reach."""


class NotFoundError(StoreError):
    """A row the caller named by id does not exist."""


def translate(exc: BaseException, where: str) -> StoreError | None:
    """The `StoreError` a driver exception stands for, or None when it is not operational."""
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    message = str(exc).lower()
    if sqlstate in _PG_LOCKED or "database is locked" in message:
        return StoreLockedError(
            f"study database {where} is locked: another process held it longer than the busy timeout"
        )
    if sqlstate in _PG_FULL or "database or disk is full" in message:
        return StoreFullError(f"study database {where} is full: no room left on the disk for the write")
    return None
