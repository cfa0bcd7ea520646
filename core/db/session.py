"""Request-scoped sessions as FastAPI dependencies; every session is closed at the end.

A session opens no connection until its first query, so a route that asks for one but
returns early costs nothing. Services commit; an uncommitted session is rolled back on close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from core.db.engine import Database
from core.db.unit_of_work import AppSession

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def write_session(request: Request) -> AsyncIterator[AppSession]:
    """A session on the primary, for unsafe methods and reads that must see own writes."""
    async with database_of(request).write_sessions() as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AppSession]:
    """A session on the replica (the primary when no replica is configured)."""
    async with database_of(request).read_sessions() as session:
        yield session


async def db_session(request: Request) -> AsyncIterator[AppSession]:
    """A read session for GET/HEAD/OPTIONS, a write session for every other method."""
    database = database_of(request)
    factory = database.read_sessions if request.method in SAFE_METHODS else database.write_sessions
    async with factory() as db_session:
        yield db_session


# The usual way to ask for a session. `scope="function"` closes it (returning its
# connection to the pool) as soon as the route returns, not after a slow client has read
# the whole response.
ReadSession = Annotated[AppSession, Depends(read_session, scope="function")]
WriteSession = Annotated[AppSession, Depends(write_session, scope="function")]
DbSession = Annotated[AppSession, Depends(db_session, scope="function")]
