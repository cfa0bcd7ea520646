"""Telling "the database cannot be reached" (503) apart from "this query is wrong" (500)."""

from __future__ import annotations

import socket
import sqlite3
import sys

from sqlalchemy import exc as sa_exc

# SQLite reports a missing table like an outage; only these mean "unreachable".
_SQLITE_UNAVAILABLE = ("unable to open", "database is locked", "disk I/O error")

# PostgreSQL SQLSTATE classes meaning the server cannot serve us now: connection exception
# (08), invalid authorization (28), database does not exist (3D), insufficient resources
# such as too many connections (53), operator intervention: shutdown, cannot connect now,
# statement timeout (57).
_PG_UNAVAILABLE = ("08", "28", "3D", "53", "57")

# PostgreSQL SQLSTATE class 40, transaction rollback: a serialization failure (40001) or a
# deadlock (40P01). The transaction lost a race with another one and was rolled back; the
# same request sent again succeeds.
_PG_LOST_RACE = ("40",)

# PostgreSQL SQLSTATEs meaning the connection itself failed or the server ended it:
# connection exception (class 08), and the server going away: administrator shutdown
# (57P01), crash shutdown (57P02), cannot connect now (57P03). A statement timeout (57014)
# is not among them: the server is there, the query was slow.
_PG_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")

_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


def _sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a driver error, looking through SQLAlchemy's adaptation layer."""
    while error is not None:
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str):
            return state
        error = error.__cause__
    return None


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached (not a bad query)."""
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc.orig, sqlite3.OperationalError):
            return any(m in str(exc.orig) for m in _SQLITE_UNAVAILABLE)
        state = _sqlstate(exc.orig)
        if state is not None:
            return state.startswith(_PG_UNAVAILABLE)
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        return isinstance(exc.orig, OSError | TimeoutError | ConnectionError)
    return isinstance(exc, TimeoutError | ConnectionError | socket.gaierror)


def is_connection_failure(exc: BaseException) -> bool:
    """True when `exc` (SQLAlchemy's error, or the driver's) means a connection could not be
    made or was lost: refused, unreachable, timed out while connecting, reset, the server
    shutting down. Not a slow or a bad query, nor a full pool: the server is there."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    error: BaseException | None = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(error, sqlite3.OperationalError):  # SQLite "connects" by opening a file
        return "unable to open" in str(error)
    state = _sqlstate(error)
    if state is not None:
        return state.startswith(_PG_CONNECTION_LOST)
    while error is not None:  # the socket's own error, under the driver's
        if isinstance(error, OSError):
            return True
        error = error.__cause__
    return False


def is_lost_race(exc: BaseException) -> bool:
    """True when the database rolled the transaction back to settle a race (deadlock,
    serialization failure): not a bad query, and retrying is the cure."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    state = _sqlstate(exc.orig)
    return state is not None and state.startswith(_PG_LOST_RACE)


def is_stale_statement(exc: BaseException) -> bool:
    """True when a prepared statement the driver kept no longer matches the schema (a
    column's type changed since it was prepared, by a deploy's migration from another
    connection). The driver has dropped its prepared statements by the time this is
    raised: the same statement run again succeeds, outside a transaction at once; inside
    one, the database aborted the transaction, so only the whole transaction can be."""
    driver = sys.modules.get("asyncpg")  # not imported: not the error of a connection of it
    if driver is None or not isinstance(exc, sa_exc.DBAPIError):
        return False
    error: BaseException | None = exc.orig
    while error is not None:
        if isinstance(error, driver.exceptions.InvalidCachedStatementError):
            return True
        error = error.__cause__
    return False


def raised_by_database(exc: BaseException) -> bool:
    """SQLAlchemy's errors, and the raw OSError/TimeoutError a driver raises while connecting.

    asyncpg's connect errors reach us unwrapped; the traceback tells where they came from.
    """
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False
