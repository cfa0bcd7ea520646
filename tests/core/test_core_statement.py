"""`CoreStatement` gives the row SQLAlchemy gives, on every backend, with the columns' own
conversions (UTC datetimes), parameters bound in the statement itself, and no row; its
writes count their rows; in one transaction, all or nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db import CoreStatement, UTCDateTime
from core.db.engine import Database
from core.db.errors import is_database_unavailable
from core.settings import CoreSettings
from tests.support.databases import backends, kill_app_connections

THINGS = sa.Table(
    "core_thing",
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


async def test_a_core_statement_gives_what_sqlalchemy_gives(database_url: str) -> None:
    database = Database(CoreSettings(env="test", database_url=database_url))
    try:
        await make_things(database)
        read = CoreStatement(statement())
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
        assert await read.first(engine, thing_id="t1") == row  # built once, run again
        async with database.primary_read_engine.connect() as connection:  # one checkout
            assert await read.first(connection, thing_id="t1") == row
            assert await read.first(connection, thing_id="t2") is None
    finally:
        await database.dispose()


def insert_thing() -> CoreStatement:
    return CoreStatement(
        THINGS.insert().values(
            id=sa.bindparam("new_id"),
            kind=sa.bindparam("new_kind"),
            size=1,
            active=True,
            seen_at=sa.bindparam("new_seen_at"),
        )
    )


async def insert_in_one_transaction(
    database: Database,
    *ids: str,
    after_first: Callable[[], Awaitable[object]] | None = None,
    then_raise: Exception | None = None,
) -> None:
    """Insert things `ids` in one transaction; call `after_first` between the first
    insert and the next, and raise `then_raise` at the end (before the commit)."""
    insert = insert_thing()
    async with database.write_engine.begin() as transaction:
        for n, thing_id in enumerate(ids):
            if n == 1 and after_first is not None:
                await after_first()
            await insert.execute(transaction, new_id=thing_id, new_kind="bag", new_seen_at=SEEN)
        if then_raise is not None:
            raise then_raise


async def thing_ids(database: Database) -> list[str]:
    async with database.write_engine.connect() as connection:
        return list((await connection.execute(sa.select(THINGS.c.id).order_by("id"))).scalars())


async def test_a_transaction_commits_its_writes_or_none_of_them(database_url: str) -> None:
    database = Database(CoreSettings(env="test", database_url=database_url))
    insert = insert_thing()
    shrink = CoreStatement(
        THINGS.update().where(THINGS.c.kind == sa.bindparam("of_kind")).values(size=0)
    )
    try:
        await make_things(database)
        async with database.write_engine.begin() as transaction:
            await insert.execute(transaction, new_id="t4", new_kind="box", new_seen_at=SEEN)
            assert await shrink.execute(transaction, of_kind="box") == 3  # t1, t3, t4
            row = await CoreStatement(statement()).first(transaction, thing_id="t4")
            assert row is not None
            assert row["size"] == 0, "its own writes are visible in it"
        assert await thing_ids(database) == ["t1", "t2", "t3", "t4"]

        refused = RuntimeError("the caller changes its mind")
        with pytest.raises(RuntimeError):
            await insert_in_one_transaction(database, "t5", then_raise=refused)
        with pytest.raises(IntegrityError):
            await insert_in_one_transaction(database, "t6", "t1")  # t1 exists
        assert await thing_ids(database) == ["t1", "t2", "t3", "t4"], "t5, t6 rolled back"
        # The connections went back to the pool with no transaction left open.
        assert await CoreStatement(statement()).first(database.write_engine, thing_id="t4")
        await insert_in_one_transaction(database, "t7")
        assert await thing_ids(database) == ["t1", "t2", "t3", "t4", "t7"]
    finally:
        await database.dispose()


ONLY_POSTGRESQL = [b for b in backends() if b == "postgresql"]


@pytest.mark.parametrize("database_url", ONLY_POSTGRESQL, indirect=True)
@pytest.mark.parametrize("pooler", ["none", "transaction"])
async def test_a_connection_lost_under_a_core_statement_is_an_outage_and_is_not_reused(
    database_url: str, pooler: str
) -> None:
    """The server drops the connection: the read fails as SQLAlchemy's own reads do (an
    error the app answers with 503), and the next read gets a new connection."""
    settings = CoreSettings(
        env="test", database_url=database_url, db_ping_idle_after=3600, db_pooler=pooler
    )
    database = Database(settings)
    try:
        await make_things(database)
        read = CoreStatement(statement())
        assert await read.first(database.primary_read_engine, thing_id="t1") is not None
        assert await kill_app_connections(database_url) >= 1
        with pytest.raises(DBAPIError) as failed:
            await read.first(database.primary_read_engine, thing_id="t1")
        assert failed.value.connection_invalidated
        assert is_database_unavailable(failed.value)
        assert await read.first(database.primary_read_engine, thing_id="t1") is not None
    finally:
        await database.dispose()


@pytest.mark.parametrize("database_url", ONLY_POSTGRESQL, indirect=True)
@pytest.mark.parametrize("pooler", ["none", "transaction"])
async def test_a_connection_lost_in_a_transaction_is_an_outage_and_writes_nothing(
    database_url: str, pooler: str
) -> None:
    settings = CoreSettings(
        env="test", database_url=database_url, db_ping_idle_after=3600, db_pooler=pooler
    )
    database = Database(settings)
    try:
        await make_things(database)
        killed: list[int] = []

        async def kill() -> None:
            killed.append(await kill_app_connections(database_url))

        with pytest.raises(DBAPIError) as failed:
            await insert_in_one_transaction(database, "t8", "t9", after_first=kill)
        assert killed[0] >= 1
        assert failed.value.connection_invalidated
        assert is_database_unavailable(failed.value)
        assert await thing_ids(database) == ["t1", "t2", "t3"]
        await insert_in_one_transaction(database, "t8")  # on a new connection
        assert await thing_ids(database) == ["t1", "t2", "t3", "t8"]
    finally:
        await database.dispose()
