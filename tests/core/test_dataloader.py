"""Batching look-ups: what docs/plugins.md promises of `aiodataloader.DataLoader`, the
batcher Courtyard installs for plugins, and nothing more (no detail of the library's own,
such as the order of the keys within a batch). These pin the behaviour plugins rely on,
so an upgrade that changes it fails here rather than in a plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Annotated

import httpx
from aiodataloader import DataLoader
from fastapi import Depends, FastAPI, Request

NAMES = {"usr_a": "Ada", "usr_b": "Bob", "usr_c": "Cy"}


class Names:
    """A batch function over a dict standing in for the database; records each batch."""

    def __init__(self, rows: Mapping[str, str] = NAMES) -> None:
        self.rows = rows
        self.batches: list[list[str]] = []

    async def fetch(self, ids: list[str]) -> list[str | None]:
        self.batches.append(list(ids))
        await asyncio.sleep(0)  # a real query yields to the loop too
        return [self.rows.get(i) for i in ids]  # in the keys' order; None where missing


async def test_loads_of_one_tick_make_one_batch_of_distinct_keys() -> None:
    names = Names()
    loader = DataLoader(names.fetch)

    found = await asyncio.gather(*(loader.load(i) for i in ["usr_a", "usr_b", "usr_a", "usr_c"]))

    assert found == ["Ada", "Bob", "Ada", "Cy"]
    [batch] = names.batches  # one call, each key once
    assert sorted(batch) == ["usr_a", "usr_b", "usr_c"]


async def test_load_many_answers_in_the_order_asked() -> None:
    names = Names()
    loader = DataLoader(names.fetch)

    assert await loader.load_many(["usr_c", "usr_a"]) == ["Cy", "Ada"]
    assert len(names.batches) == 1


async def test_a_loader_caches_what_it_loaded_and_a_new_one_starts_empty() -> None:
    names = Names()
    first = DataLoader(names.fetch)
    await first.load("usr_a")

    again = await first.load("usr_a")
    other = await DataLoader(names.fetch).load("usr_a")  # the next request's loader

    assert (again, other) == ("Ada", "Ada")
    assert names.batches == [["usr_a"], ["usr_a"]]


async def test_a_missing_key_is_none_for_that_key_only() -> None:
    loader = DataLoader(Names().fetch)

    assert await loader.load_many(["usr_a", "usr_gone"]) == ["Ada", None]


async def test_an_error_for_one_key_fails_that_key_only() -> None:
    async def fetch(ids: list[str]) -> list[str | Exception]:
        return [LookupError(i) if i == "usr_b" else NAMES[i] for i in ids]

    loader = DataLoader(fetch)

    a, b = await asyncio.gather(loader.load("usr_a"), loader.load("usr_b"), return_exceptions=True)

    assert a == "Ada"
    assert isinstance(b, LookupError)
    assert str(b) == "usr_b"


async def test_a_failing_batch_fails_every_waiting_key_and_is_not_cached() -> None:
    calls: list[list[str]] = []

    async def fetch(ids: list[str]) -> list[str]:
        calls.append(list(ids))
        if len(calls) == 1:
            raise ConnectionError("the database is away")
        return [NAMES[i] for i in ids]

    loader = DataLoader(fetch)

    failed = await asyncio.gather(
        loader.load("usr_a"), loader.load("usr_b"), return_exceptions=True
    )
    retried = await loader.load_many(["usr_a", "usr_b"])

    assert [type(e) for e in failed] == [ConnectionError, ConnectionError]
    assert retried == ["Ada", "Bob"]
    assert [sorted(call) for call in calls] == [["usr_a", "usr_b"], ["usr_a", "usr_b"]]


async def test_a_key_asked_for_while_its_batch_is_under_way_joins_it() -> None:
    batches: list[list[str]] = []
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_fetch(ids: list[str]) -> list[str]:
        batches.append(list(ids))
        asked.set()
        await release.wait()  # the first batch's query is still running
        return [NAMES[i] for i in ids]

    loader = DataLoader(slow_fetch)
    started = loader.load("usr_a")
    await asked.wait()

    joined, later = loader.load("usr_a"), loader.load("usr_b")
    release.set()

    assert list(await asyncio.gather(started, joined, later)) == ["Ada", "Ada", "Bob"]
    assert [key for batch in batches for key in batch].count("usr_a") == 1  # asked once


async def name_loader(request: Request) -> DataLoader[str, str | None]:
    """The documented pattern: an `async def` dependency makes the loader."""
    names: Names = request.app.state.names
    return DataLoader(names.fetch)


NameLoader = Annotated[DataLoader[str, str | None], Depends(name_loader)]


async def first_name(loader: NameLoader) -> str | None:
    return await loader.load("usr_a")


async def read_names(
    loader: NameLoader, first: Annotated[str | None, Depends(first_name)], ids: str
) -> dict[str, object]:
    listed: Sequence[str | None] = await loader.load_many(ids.split(","))
    return {"first": first, "listed": list(listed)}


async def test_one_loader_per_request_through_a_fastapi_dependency() -> None:
    """FastAPI calls the dependency once per request, so every part of one request shares
    the loader, and no request sees what another one loaded."""
    app = FastAPI()
    app.state.names = names = Names()
    app.get("/names")(read_names)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        one = await client.get("/names", params={"ids": "usr_a,usr_b"})
        two = await client.get("/names", params={"ids": "usr_a,usr_x"})

    assert one.json() == {"first": "Ada", "listed": ["Ada", "Bob"]}
    assert two.json() == {"first": "Ada", "listed": ["Ada", None]}
    # Per request: usr_a once (the dependency's load is cached for the route), then the rest.
    assert names.batches == [["usr_a"], ["usr_b"], ["usr_a"], ["usr_x"]]
