"""`HotRead` gives the same row as SQLAlchemy would, on every backend, with the columns'
own conversions (UTC datetimes), parameters bound in the statement itself, and no row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from core.db import HotRead, UTCDateTime
from core.db.engine import Database
from core.db.errors import is_database_unavailable
from core.settings import CoreSettings
from tests.support.databases import backends, kill_app_connections

THINGS = sa.Table(
    "hot_thing",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Column("gone_at", UTCDateTime),
)
SEEN = datetime(2026, 11, 24, 21, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))


async def make_things(database: Database) -> None:
    async with database.write_engine.begin() as connection:
        await connection.run_sync(THINGS.metadata.create_all)
        await connection.execute(
            THINGS.insert(),
            [
                {"id": "t1", "kind": "box", "size": 2**40, "active": True, "seen_at": SEEN},
                {"id": "t2", "kind": "bag", "size": 1, "active": True, "seen_at": SEEN},
                {"id": "t3", "kind": "box", "size": 1, "active": False, "seen_at": SEEN},
            ],
        )


def statement() -> sa.Select[tuple[object, ...]]:
    return sa.select(*THINGS.c).where(
        THINGS.c.id == sa.bindparam("thing_id"),
        THINGS.c.kind == "box",  # bound in the statement itself
        THINGS.c.active.is_(True),
        THINGS.c.gone_at.is_(None),
    )


async def test_a_hot_read_gives_what_sqlalchemy_gives(database_url: str) -> None:
    database = Database(CoreSettings(env="test", database_url=database_url))
    try:
        await make_things(database)
        read = HotRead(statement())
        engine = database.primary_read_engine
        row = await read.first(engine, thing_id="t1")
        async with engine.connect() as connection:
            expected = (await connection.execute(statement(), {"thing_id": "t1"})).one()
        assert row is not None
        assert dict(row) == dict(expected._mapping)
        assert dict(row) == {
            "id": "t1", "kind": "box", "size": 2**40, "active": True,
            "seen_at": SEEN.astimezone(UTC), "gone_at": None,
        }  # fmt: skip
        assert row["seen_at"].tzinfo is UTC
        for missing in ("t2", "t3", "nothing"):
            assert await read.first(engine, thing_id=missing) is None
        assert await read.first(engine, thing_id="t1") == row  # compiled once, used again
    finally:
        await database.dispose()


ONLY_POSTGRESQL = [b for b in backends() if b == "postgresql"]


@pytest.mark.parametrize("database_url", ONLY_POSTGRESQL, indirect=True)
async def test_a_connection_lost_under_a_hot_read_is_an_outage_and_is_not_reused(
    database_url: str,
) -> None:
    """The server drops the connection: the read fails as SQLAlchemy's own reads do (an
    error the app answers with 503), and the next read gets a new connection."""
    settings = CoreSettings(env="test", database_url=database_url, db_ping_idle_after=3600)
    database = Database(settings)
    try:
        await make_things(database)
        read = HotRead(statement())
        assert await read.first(database.primary_read_engine, thing_id="t1") is not None
        assert await kill_app_connections(database_url) >= 1
        with pytest.raises(DBAPIError) as failed:
            await read.first(database.primary_read_engine, thing_id="t1")
        assert failed.value.connection_invalidated
        assert is_database_unavailable(failed.value)
        assert await read.first(database.primary_read_engine, thing_id="t1") is not None
    finally:
        await database.dispose()
