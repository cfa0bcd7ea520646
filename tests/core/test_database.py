"""Engines, sessions, BaseRepository, ids and timestamps.

Behaviour is driven through `alpha`'s routes (router → service → BaseRepository) and checked
against the database itself, on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from ulid import ULID

from core.app import create_app
from core.db.ids import ID_PATTERN, is_valid_id, new_id
from core.db.model import UTCDateTime
from tests.conftest import make_settings, migrate, running
from tests.support.databases import backends, fresh_database
from tests.support.problems import assert_problem

# Only `alpha`: `beta` stays installed but disabled, as on a real deployment (beta's revision
# `depends_on` alpha's, which once kept alpha's table from being migrated at all).
PLUGINS = "alpha"
ITEMS = "/api/v1/alpha/items"

ALPHA_ITEM = sa.Table(
    "alpha_item",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
)


# -- direct database access --------------------------------------------------------------------


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of our own, outside the app, in a transaction committed on exit."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


async def stored_items(url: str) -> dict[str, dict[str, Any]]:
    """Every alpha_item row by name, soft-deleted ones included."""
    async with connect(url) as connection:
        result = await connection.execute(sa.select(ALPHA_ITEM))
        return {row["name"]: dict(row) for row in result.mappings()}


async def insert_item(url: str, name: str) -> str:
    item_id = new_id("alp")
    now = datetime.now(UTC)
    async with connect(url) as connection:
        await connection.execute(
            ALPHA_ITEM.insert().values(id=item_id, name=name, created_at=now, updated_at=now)
        )
    return item_id


def backend_of(url: str) -> str:
    return make_url(url).get_backend_name()


# -- HTTP helpers ------------------------------------------------------------------------------


async def create_items(client: httpx.AsyncClient, count: int, prefix: str) -> list[str]:
    ids = []
    for n in range(count):
        response = await client.post(ITEMS, json={"name": f"{prefix}-{n}"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def page(
    client: httpx.AsyncClient, limit: int | None = None, cursor: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    response = await client.get(ITEMS, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


async def all_pages(client: httpx.AsyncClient, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        body = await page(client, limit, cursor)
        ids = [item["id"] for item in body["items"]]
        pages.append(ids)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert cursor == ids[-1]
        assert len(pages) < 100, "pagination does not end"


@pytest.fixture
async def client(main_plugins: None, app_client) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(enabled_plugins=PLUGINS) as client:
        yield client


# -- read/write separation ---------------------------------------------------------------------


@pytest.fixture
async def replica_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second, separate database on the same backend as `database_url`."""
    folder = tmp_path / "replica"
    folder.mkdir()
    async with fresh_database(backend_of(database_url), folder) as url:
        assert url != database_url
        yield url


# Building the engines opens no connection, so these need no running server.
URL_PAIRS = [
    pytest.param(
        "sqlite+aiosqlite:///{tmp}/primary.db", "sqlite+aiosqlite:///{tmp}/replica.db", id="sqlite"
    ),
    pytest.param(
        "postgresql+asyncpg://app:pw@primary.invalid:5432/courtyard",
        "postgresql+asyncpg://reader:pw@replica.invalid:5433/courtyard",
        id="postgresql",
    ),
]


@pytest.mark.parametrize(("primary", "replica"), URL_PAIRS)
async def test_a_replica_gets_its_own_read_engine(
    main_plugins: None, tmp_path: Path, primary: str, replica: str
) -> None:
    primary, replica = primary.format(tmp=tmp_path), replica.format(tmp=tmp_path)
    app = create_app(make_settings(primary, read_database_url=replica, enabled_plugins=PLUGINS))
    database = app.state.database
    try:
        assert database.read_engine is not database.write_engine
        assert database.has_replica
        assert database.read_engine.url.render_as_string(hide_password=False) == replica
        assert database.write_engine.url.render_as_string(hide_password=False) == primary
    finally:
        await database.dispose()


@pytest.mark.parametrize("same", [False, True], ids=["unset", "same-url"])
@pytest.mark.parametrize(("primary", "replica"), URL_PAIRS)
async def test_without_a_replica_reads_use_the_primary_engine(
    main_plugins: None, tmp_path: Path, primary: str, replica: str, same: bool
) -> None:
    primary = primary.format(tmp=tmp_path)
    settings = make_settings(
        primary, read_database_url=primary if same else None, enabled_plugins=PLUGINS
    )
    database = create_app(settings).state.database
    try:
        assert database.read_engine is database.write_engine
        assert not database.has_replica
    finally:
        await database.dispose()


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    main_plugins: None, app_client, database_url: str, replica_url: str
) -> None:
    await migrate(make_settings(replica_url, enabled_plugins=PLUGINS))
    on_replica = await insert_item(replica_url, "replica-only")

    async with app_client(enabled_plugins=PLUGINS, read_database_url=replica_url) as client:
        created = await client.post(ITEMS, json={"name": "primary-only"})
        assert created.status_code == 201, created.text
        on_primary = created.json()["id"]

        listed = await page(client)
        assert [i["name"] for i in listed["items"]] == ["replica-only"]
        assert (await client.get(f"{ITEMS}/{on_replica}")).status_code == 200
        assert_problem(await client.get(f"{ITEMS}/{on_primary}"), 404, "alpha.not_found")
        # DELETE is a write: it looks on the primary, which never had the replica's row.
        assert_problem(await client.delete(f"{ITEMS}/{on_replica}"), 404, "alpha.not_found")

    primary = await stored_items(database_url)
    assert set(primary) == {"primary-only"}
    assert primary["primary-only"]["id"] == on_primary
    replica = await stored_items(replica_url)
    assert set(replica) == {"replica-only"}
    assert replica["replica-only"]["deleted_at"] is None


# -- cursor pagination -------------------------------------------------------------------------


async def test_cursor_pagination_visits_every_item_once(client: httpx.AsyncClient) -> None:
    ids = await create_items(client, 45, "item")
    newest_first = sorted(ids, reverse=True)

    pages = await all_pages(client, 20)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [i for p in pages for i in p] == newest_first

    pages = await all_pages(client, 15)  # an exact multiple: no empty trailing page
    assert [len(p) for p in pages] == [15, 15, 15]
    assert [i for p in pages for i in p] == newest_first

    everything = await page(client, 100)
    assert [i["id"] for i in everything["items"]] == newest_first
    assert everything["next_cursor"] is None

    default = await page(client)
    assert [i["id"] for i in default["items"]] == newest_first[:20]
    assert default["next_cursor"] == newest_first[19]


async def test_items_inserted_while_paging_cause_no_duplicates_or_gaps(
    client: httpx.AsyncClient,
) -> None:
    originals = await create_items(client, 45, "old")
    seen: list[str] = []
    cursor = None
    for round_ in range(10):
        body = await page(client, 20, cursor)
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        await create_items(client, 5, f"new{round_}")
    assert cursor is None
    assert len(seen) == len(set(seen)), "an item was listed twice"
    assert [i for i in seen if i in set(originals)] == sorted(originals, reverse=True)


async def test_paging_continues_after_the_cursor_item_is_deleted(
    client: httpx.AsyncClient,
) -> None:
    ids = sorted(await create_items(client, 5, "item"), reverse=True)
    first = await page(client, 2)
    assert [i["id"] for i in first["items"]] == ids[:2]
    assert (await client.delete(f"{ITEMS}/{first['next_cursor']}")).status_code == 204
    second = await page(client, 2, first["next_cursor"])
    assert [i["id"] for i in second["items"]] == ids[2:4]


async def test_an_unknown_but_well_formed_cursor_is_just_a_position(
    client: httpx.AsyncClient,
) -> None:
    ids = sorted(await create_items(client, 3, "item"), reverse=True)
    after_everything = f"alp_{ULID()}"  # newer than every item
    assert [i["id"] for i in (await page(client, 10, after_everything))["items"]] == ids
    before_everything = "alp_00000000000000000000000000"
    assert (await page(client, 10, before_everything)) == {"items": [], "next_cursor": None}


# -- soft delete -------------------------------------------------------------------------------


async def test_soft_delete_hides_the_item_but_keeps_the_row(
    client: httpx.AsyncClient, database_url: str
) -> None:
    keep, gone = await create_items(client, 2, "item")
    before = datetime.now(UTC)

    deleted = await client.delete(f"{ITEMS}/{gone}")
    assert deleted.status_code == 204
    assert deleted.content == b""

    assert_problem(await client.get(f"{ITEMS}/{gone}"), 404, "alpha.not_found")
    assert [i["id"] for i in (await page(client))["items"]] == [keep]
    assert_problem(await client.delete(f"{ITEMS}/{gone}"), 404, "alpha.not_found")
    assert (await client.get(f"{ITEMS}/{keep}")).status_code == 200

    rows = await stored_items(database_url)
    assert set(rows) == {"item-0", "item-1"}
    assert rows["item-0"]["id"] == keep
    assert rows["item-0"]["deleted_at"] is None
    row = rows["item-1"]
    assert row["id"] == gone
    deleted_at = row["deleted_at"]
    assert deleted_at is not None
    assert deleted_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= deleted_at <= datetime.now(UTC)
    assert deleted_at >= row["created_at"]
    assert row["updated_at"] >= deleted_at


# -- ids and timestamps seen by clients --------------------------------------------------------


async def test_ids_are_prefixed_ulids(client: httpx.AsyncClient) -> None:
    ids = await create_items(client, 5, "item")
    for item_id in ids:
        assert is_valid_id(item_id, "alp"), item_id
        assert re.fullmatch(r"alp_[0-9A-HJKMNP-TV-Z]{26}", item_id)
        assert ULID.from_str(item_id.removeprefix("alp_")).datetime <= datetime.now(UTC)
    assert len(set(ids)) == 5


async def test_created_at_is_timezone_aware_utc(
    client: httpx.AsyncClient, database_url: str
) -> None:
    before = datetime.now(UTC)
    created = await client.post(ITEMS, json={"name": "stamped"})
    after = datetime.now(UTC)
    assert created.status_code == 201
    item = created.json()

    fetched = await client.get(f"{ITEMS}/{item['id']}")
    listed = (await page(client))["items"][0]
    stamps = [item["created_at"], fetched.json()["created_at"], listed["created_at"]]
    for stamp in stamps:
        assert stamp.endswith(("Z", "+00:00")), stamp
    moments = [datetime.fromisoformat(s) for s in stamps]
    for moment in moments:
        assert moment.utcoffset() == timedelta(0)
        assert before <= moment <= after
    assert moments[0] == moments[1] == moments[2]  # the database keeps the exact instant
    assert (await stored_items(database_url))["stamped"]["created_at"] == moments[0]


# -- core.db.ids -------------------------------------------------------------------------------

VALID_ULID = "01JD8X5Q3ZK7M2V4N6P8R0T1W9"


def test_new_id_is_a_valid_prefixed_ulid() -> None:
    item_id = new_id("usr")
    assert item_id.startswith("usr_")
    assert len(item_id) == 30
    assert is_valid_id(item_id)
    assert is_valid_id(item_id, "usr")
    assert not is_valid_id(item_id, "us")
    assert not is_valid_id(item_id, "usrx")
    assert re.fullmatch(ID_PATTERN, item_id)


def test_new_ids_are_unique_and_sort_by_creation_time() -> None:
    ids = [new_id("x") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # many share a millisecond: still in creation order
    earlier = new_id("x")
    time.sleep(0.002)
    later = new_id("x")
    assert earlier < later


def test_new_ids_are_ulids_of_the_current_time() -> None:
    before = datetime.now(UTC)
    encoded = new_id("x").removeprefix("x_")
    decoded = ULID.from_str(encoded)  # an independent decoder
    assert str(decoded) == encoded
    assert before - timedelta(milliseconds=1) <= decoded.datetime <= datetime.now(UTC)


def test_ids_made_on_many_threads_at_once_are_unique() -> None:
    """`new_id` may be called from any thread and no two ids collide (their order within a
    millisecond is not guaranteed across threads: see `new_id`)."""
    start = threading.Barrier(4)

    def make() -> list[str]:
        start.wait()
        return [new_id("x") for _ in range(5000)]

    with ThreadPoolExecutor(4) as threads:
        made = [threads.submit(make) for _ in range(4)]
    every_id = [item_id for batch in made for item_id in batch.result()]
    assert len(set(every_id)) == len(every_id) == 20_000


@pytest.mark.parametrize(
    "value",
    [
        f"alp_{VALID_ULID}",
        f"a_{VALID_ULID}",
        f"a1b2_{VALID_ULID}",
        f"{'p' * 16}_{VALID_ULID}",
        "alp_00000000000000000000000000",
        "alp_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
    ],
)
def test_is_valid_id_accepts(value: str) -> None:
    assert is_valid_id(value)
    assert re.fullmatch(ID_PATTERN, value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("alp", id="prefix-only"),
        pytest.param("alp_", id="no-ulid"),
        pytest.param(VALID_ULID, id="no-prefix"),
        pytest.param(f"_{VALID_ULID}", id="empty-prefix"),
        pytest.param(f"ALP_{VALID_ULID}", id="uppercase-prefix"),
        pytest.param(f"1lp_{VALID_ULID}", id="prefix-starts-with-digit"),
        pytest.param(f"{'p' * 17}_{VALID_ULID}", id="prefix-17-chars"),
        pytest.param(f"al-p_{VALID_ULID}", id="dash-in-prefix"),
        pytest.param(f"alp-{VALID_ULID}", id="dash-separator"),
        pytest.param(f"alp__{VALID_ULID}", id="double-underscore"),
        pytest.param(f"alp_{VALID_ULID.lower()}", id="lowercase-ulid"),
        pytest.param(f"alp_{VALID_ULID[:-1]}", id="ulid-25-chars"),
        pytest.param(f"alp_{VALID_ULID}0", id="ulid-27-chars"),
        pytest.param("alp_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", id="ulid-overflows-128-bits"),
        pytest.param(f"alp_{VALID_ULID[:-1]}I", id="crockford-I"),
        pytest.param(f"alp_{VALID_ULID[:-1]}L", id="crockford-L"),
        pytest.param(f"alp_{VALID_ULID[:-1]}O", id="crockford-O"),
        pytest.param(f"alp_{VALID_ULID[:-1]}U", id="crockford-U"),
        pytest.param(f" alp_{VALID_ULID}", id="leading-space"),
        pytest.param(f"alp_{VALID_ULID} ", id="trailing-space"),
        pytest.param(f"alp_{VALID_ULID}\n", id="trailing-newline"),
    ],
)
def test_is_valid_id_rejects(value: str) -> None:
    assert not is_valid_id(value)
    assert not is_valid_id(value, "alp")
    assert not re.fullmatch(ID_PATTERN, value)


@pytest.mark.parametrize("prefix", ["", "Usr", "us_r", "p" * 17])
def test_new_id_refuses_a_prefix_that_makes_invalid_ids(prefix: str) -> None:
    """An id that `is_valid_id` rejects also fails `?cursor=` validation, so a table with such
    ids could not be paged; refusing the prefix up front (at model definition) is safer."""
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)


# -- UTCDateTime -------------------------------------------------------------------------------

MOMENTS = sa.Table(
    "test_moments",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime),
)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.asyncpg.dialect()])
def test_utc_datetime_refuses_naive_values(dialect: sa.Dialect) -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2024, 5, 6, 12, 30), dialect)


@pytest.fixture
async def moments(database_url: str) -> str:
    async with connect(database_url) as connection:
        await connection.run_sync(MOMENTS.metadata.create_all)
    return database_url


async def test_utc_datetime_round_trips_the_instant_as_utc(moments: str) -> None:
    cest = timezone(timedelta(hours=2))
    given = datetime(2024, 5, 6, 12, 30, 15, 123456, tzinfo=cest)
    async with connect(moments) as connection:
        await connection.execute(MOMENTS.insert().values(id=1, at=given))
        await connection.execute(MOMENTS.insert().values(id=2, at=None))
    async with connect(moments) as connection:
        rows = dict((await connection.execute(sa.select(MOMENTS.c.id, MOMENTS.c.at))).all())
        raw = (
            await connection.execute(sa.text("SELECT at FROM test_moments WHERE id = 1"))
        ).scalar()
    assert rows[1] == given
    assert rows[1].utcoffset() == timedelta(0)
    assert rows[1].microsecond == 123456
    assert rows[2] is None
    if backend_of(moments) == "sqlite":  # stored as naive UTC, not local wall time
        assert raw == "2024-05-06 10:30:15.123456"
    else:
        assert raw == given


async def test_utc_datetime_naive_value_is_not_written(moments: str) -> None:
    with pytest.raises(sa.exc.StatementError) as failure:
        async with connect(moments) as connection:
            await connection.execute(MOMENTS.insert().values(id=1, at=datetime(2024, 5, 6)))
    assert isinstance(failure.value.orig, ValueError)
    async with connect(moments) as connection:
        count = (await connection.execute(sa.select(sa.func.count()).select_from(MOMENTS))).scalar()
    assert count == 0


# -- PostgreSQL pool: sessions are returned, exhaustion is a 503 -------------------------------

if "postgresql" in backends():

    @pytest.fixture
    async def one_connection_app(
        main_plugins: None, tmp_path: Path
    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        async with fresh_database("postgresql", tmp_path) as url:
            settings = make_settings(
                url, enabled_plugins=PLUGINS, db_pool_size=1, db_max_overflow=0, db_pool_timeout=1
            )
            await migrate(settings)
            app = create_app(settings)
            async with running(app) as client:
                yield app, client

    @pytest.mark.postgres
    async def test_every_request_gives_its_connection_back(
        one_connection_app: tuple[FastAPI, httpx.AsyncClient],
    ) -> None:
        _, client = one_connection_app
        missing = f"{ITEMS}/alp_{ULID()}"
        for n in range(6):
            assert (await client.post(ITEMS, json={"name": f"ok-{n}"})).status_code == 201
            assert (await client.post(ITEMS, json={"name": "x" * 99})).status_code == 422
            assert (await client.get(missing)).status_code == 404
            assert (await client.delete(missing)).status_code == 404
            assert (await client.get(f"{ITEMS}?limit=0")).status_code == 422
            assert (await client.get("/api/v1/alpha/boom")).status_code == 500
            assert (await client.get(ITEMS)).status_code == 200
        assert len((await page(client, 100))["items"]) == 6

    @pytest.mark.postgres
    async def test_an_exhausted_pool_answers_503_not_a_hang(
        one_connection_app: tuple[FastAPI, httpx.AsyncClient],
    ) -> None:
        app, client = one_connection_app
        async with app.state.database.write_engine.connect() as held:
            await held.execute(sa.select(1))  # the pool's only connection is now taken
            try:  # a generous bound: the point is that it answers, not how fast
                response = await asyncio.wait_for(client.get(ITEMS), timeout=15)
            except TimeoutError:
                pytest.fail("the request hung on the exhausted pool instead of answering 503")
        assert_problem(response, 503, "core.database_unavailable")
        assert int(response.headers["retry-after"]) > 0
        assert (await client.get(ITEMS)).status_code == 200
