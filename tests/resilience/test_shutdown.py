"""Graceful shutdown of `courtyard serve` under load: SIGTERM while requests are in flight.

A deployment stops an instance with SIGTERM (rolling update, scale-in). Clients must see
their in-flight requests answered normally, new connections refused or closed (never a
500), the process must exit 0 soon after its last request, and every write it confirmed
must be in the database. PostgreSQL only (see conftest).

Behind a load balancer the instance drains first (COURTYARD_SHUTDOWN_DRAIN): its health
check fails at once while it keeps serving everyone, new connections included, until the
balancer has noticed, each response closing its connection so that none is pooled into
the shutdown; only then does the shutdown above begin. The first test runs without a drain
(COURTYARD_SHUTDOWN_DRAIN=0, uvicorn's own behaviour); the drain tests use short ones.

The machine running the tests may be shared and slow: the bounds on how long a step takes
are generous, while the lower bound that matters (the drain lasts at least its setting) is
kept tight.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.resilience.conftest import (
    AUTH,
    ME,
    PASSWORD,
    READY,
    app_backends,
    bearer,
    eventually,
    holding,
    live,
    pg_rows,
    served,
    signed_up,
    signup,
)
from tests.support.problems import assert_problem
from tests.support.served import server_output

pytestmark = [pytest.mark.resilience, pytest.mark.postgres]

HELD = 3  # requests certainly in flight at SIGTERM: each waits on a row lock we hold
WORKERS = 4  # clients sending signups and logins (argon2: tens of ms each) meanwhile
EXIT_BOUND = 15.0  # seconds from the last in-flight request's end to the process's exit
# What a client may see from a server that is going away: the connection refused, or
# closed before an answer. Anything with a status code must be the normal answer.
GONE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass
class Traffic:
    """What the stream of signups and logins saw: (sent at, answered at, outcome)."""

    outcomes: list[tuple[float, float, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # emails whose signup answered 201

    def answered(self) -> int:
        return sum(1 for *_, outcome in self.outcomes if outcome.isdigit())


async def stream(base_url: str, worker: int, traffic: Traffic) -> None:
    """Signups (new emails) and logins, one after another, until the server is gone."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for n in range(10_000):
            email = f"w{worker}-{n}@example.com"
            sent = time.monotonic()
            try:
                if n % 2 == 0:
                    response = await client.post(
                        f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "name": "W"}
                    )
                    expected = 201
                else:
                    response = await client.post(
                        f"{AUTH}/login", json={"email": "login@example.com", "password": PASSWORD}
                    )
                    expected = 200
            except GONE as exc:
                traffic.outcomes.append((sent, time.monotonic(), type(exc).__name__))
                return
            traffic.outcomes.append((sent, time.monotonic(), str(response.status_code)))
            assert response.status_code == expected, response.text
            if expected == 201:
                traffic.created.append(email)


async def refused(base_url: str) -> str:
    """What a new client gets now: the exception's name, or the status code."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        try:
            return str((await client.get("/health/live")).status_code)
        except GONE as exc:
            return type(exc).__name__


async def test_sigterm_answers_in_flight_requests_refuses_new_ones_and_exits_0(
    pg_url: str, tmp_path: Path
) -> None:
    with served(pg_url, tmp_path, COURTYARD_SHUTDOWN_DRAIN="0") as (base_url, process, log):
        await live(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            held_user = await signed_up(client, "held@example.com")
            await signed_up(client, "login@example.com")  # the stream's logins
            lock = 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE'
            async with holding(pg_url, lock, held_user["user"]["id"]):
                held = [
                    asyncio.create_task(
                        client.patch(ME, headers=bearer(held_user), json={"name": f"Held {n}"})
                    )
                    for n in range(HELD)
                ]
                await eventually(_waiting(pg_url, HELD), 10, "requests waiting on the lock")
                traffic = Traffic()
                workers = [
                    asyncio.create_task(stream(base_url, w, traffic)) for w in range(WORKERS)
                ]
                await eventually(_after(traffic, 2 * WORKERS), 30, "the stream getting answers")

                process.send_signal(signal.SIGTERM)
                terminated = time.monotonic()
                await asyncio.sleep(1.0)
                # Draining: still running for the held requests, but taking no one new.
                draining = process.poll()
                probe = await refused(base_url)
            released = time.monotonic()
            answers = await asyncio.gather(*held)
            await asyncio.gather(*workers)
        exit_code = await asyncio.to_thread(process.wait, EXIT_BOUND + 10)
        exited = time.monotonic()

    output = server_output(log)
    assert draining is None, output
    assert probe in {"ConnectError", "RemoteProtocolError", "ReadError"}, probe
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"].startswith("Held")
    for sent, answered, outcome in traffic.outcomes:
        if not outcome.isdigit():  # only once the server was going away
            assert answered >= terminated, (sent, answered, terminated, outcome)
    assert exit_code == 0, output
    assert "Finished server process" in output, output
    assert exited - released < EXIT_BOUND, output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output

    # Every confirmed write is stored; the engine was disposed: no connection left behind.
    stored = {email for (email,) in await pg_rows(pg_url, 'SELECT email FROM "user"')}
    assert set(traffic.created) <= stored
    assert traffic.created, "no signup was answered before SIGTERM"
    await eventually(_no_app_connections(pg_url), 5, "the app's connections closing")


# COURTYARD_SHUTDOWN_DRAIN of the drain tests, seconds: long enough for the requests made
# during it (a readiness and a liveness probe, a signup hashing with argon2, /me) to fit
# even on a busy machine, short enough to keep the test quick.
DRAIN = 4.0
AT_ONCE = 2.0  # seconds from SIGTERM to /health/ready answering 503 (in practice: one tick)
LATE = 2.0  # how long after the drain's end the port may still be open (in practice: a tick)
SHUTDOWN_BOUND = 5.0  # seconds from the last request released (or a second signal) to exit


def new_connections(base_url: str) -> httpx.AsyncClient:
    """A client that opens a new connection for every request, as a load balancer's health
    check and a client it still routes here do: none is kept alive from before."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def _status(client: httpx.AsyncClient, path: str) -> str:
    """The status code of GET `path`, or the name of the error when the server is gone."""
    try:
        return str((await client.get(path)).status_code)
    except GONE as exc:
        return type(exc).__name__


async def _until(client: httpx.AsyncClient, path: str, wanted: set[str], within: float) -> str:
    """Poll GET `path` until its outcome is one of `wanted`; fail after `within` seconds
    naming the outcome seen last."""
    deadline = time.monotonic() + within
    while (outcome := await _status(client, path)) not in wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"GET {path}: {outcome} after {within:g}s, not one of {wanted}")
        await asyncio.sleep(0.02)
    return outcome


class RawConnection:
    """One HTTP/1.1 connection kept open across requests, as a load balancer's pool keeps
    it: the test sees what the server says about it (`Connection: close`) and does (close
    it), which a client library hides."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str) -> tuple[int, dict[str, str]]:
        """GET `path` on this connection: the status and the headers (lower-cased names)
        of the answer, whose body is read and dropped."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: courtyard\r\n\r\n".encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers

    async def closed_by_server(self, within: float) -> bool:
        """Whether the server closes the connection (end of stream) within `within` s."""
        try:
            return await asyncio.wait_for(self.reader.read(1), within) == b""
        except TimeoutError:
            return False


@asynccontextmanager
async def raw_connection(base_url: str) -> AsyncIterator[RawConnection]:
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with suppress(ConnectionError):  # the server closed it first
            await writer.wait_closed()


async def test_sigterm_drains_unready_but_serving_then_shuts_down_and_exits_0(
    pg_url: str, tmp_path: Path
) -> None:
    """Stops the instance going away at once on SIGTERM: the load balancer, which needs a
    few failed health checks to take it out of rotation, would meanwhile send requests to
    a closed port. And stops a pooled keep-alive connection being reused until the
    shutdown closes it under a request (a reset): while draining, responses close it."""
    drain = {"COURTYARD_SHUTDOWN_DRAIN": f"{DRAIN:g}"}
    with served(pg_url, tmp_path, **drain) as (base_url, process, log):
        await live(base_url, process, log)
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=60) as client,
            new_connections(base_url) as probe,
            raw_connection(base_url) as pooled,
        ):
            held_user = await signed_up(client, "held@example.com")
            lock = 'SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE'
            async with holding(pg_url, lock, held_user["user"]["id"]):
                # In flight from before SIGTERM until after the drain: waits on our lock.
                held = asyncio.create_task(
                    client.patch(ME, headers=bearer(held_user), json={"name": "Held"})
                )
                await eventually(_waiting(pg_url, 1), 10, "the request waiting on the lock")
                # Before SIGTERM the pooled connection stays open (uvicorn's keep-alive
                # timeout, 5 s, is not reached before its next use below).
                kept = await pooled.get("/health/live")

                process.send_signal(signal.SIGTERM)
                terminated = time.monotonic()
                await _until(probe, READY, {"503"}, within=AT_ONCE)
                unready_after = time.monotonic() - terminated

                # Draining: out of rotation, yet serving new connections as before, and
                # the pooled one once more, closing it after its answer.
                let_go = await pooled.get("/health/live")
                pooled_closed = await pooled.closed_by_server(within=2.0)
                ready = await probe.get(READY)
                alive = await _status(probe, "/health/live")
                newcomer = await signup(probe, "newcomer@example.com")
                assert newcomer.status_code == 201, newcomer.text
                me = await probe.get(ME, headers=bearer(newcomer.json()))
                during = time.monotonic() - terminated
                still_running = process.poll()

                # The drain ends: the port closes (refused), the held request still waits.
                await _until(probe, "/health/live", set(_gone()), within=DRAIN + LATE)
                closed_after = time.monotonic() - terminated
                held_pending = not held.done()
            released = time.monotonic()
            answer = await held
        exit_code = await asyncio.to_thread(process.wait, SHUTDOWN_BOUND + 10)
        exited = time.monotonic()

    output = server_output(log)
    assert unready_after < AT_ONCE, output
    assert kept[0] == 200, kept
    assert "connection" not in kept[1], kept
    assert let_go[0] == 200, let_go
    assert let_go[1].get("connection") == "close", let_go
    assert pooled_closed, "the server kept the pooled connection open while draining"
    body = assert_problem(ready, 503, "core.not_ready")
    assert "shutting down" in body["detail"].lower(), body
    assert "retry-after" not in ready.headers  # this instance will not be back
    assert ready.headers.get("connection") == "close", ready.headers
    assert during < DRAIN, f"the checks took {during:.2f}s, past the drain"
    assert alive == "200", output
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "newcomer@example.com"
    assert me.headers.get("connection") == "close", me.headers
    assert still_running is None, output
    # Not before the drain is over (it counts from the signal's arrival, which may come a
    # moment before `terminated` is read: hence the 0.05 s), and not much after.
    assert DRAIN - 0.05 <= closed_after < DRAIN + LATE, (closed_after, output)
    assert held_pending, output
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "Held"
    assert exit_code == 0, output
    assert exited - released < SHUTDOWN_BOUND, output
    assert "Drain over" in output, output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_signal_ends_the_drain_at_once(
    pg_url: str, tmp_path: Path, again: signal.Signals
) -> None:
    """Stops an operator in a hurry waiting out a long drain: the second signal starts the
    shutdown at once (still a graceful one: the lifespan shutdown runs, exit 0)."""
    long_drain = 60.0
    with served(pg_url, tmp_path, COURTYARD_SHUTDOWN_DRAIN=f"{long_drain:g}") as (
        base_url,
        process,
        log,
    ):
        await live(base_url, process, log)
        async with new_connections(base_url) as probe:
            process.send_signal(signal.SIGTERM)
            await _until(probe, READY, {"503"}, within=AT_ONCE)
            await asyncio.sleep(0.3)
            draining = process.poll()
            process.send_signal(again)
            hurried = time.monotonic()
            exit_code = await asyncio.to_thread(process.wait, SHUTDOWN_BOUND + 10)
            exited = time.monotonic()
            after = await _status(probe, "/health/live")

    output = server_output(log)
    assert draining is None, output
    assert exit_code == 0, output
    assert exited - hurried < SHUTDOWN_BOUND, output
    assert after in _gone(), after
    assert "Drain ended early" in output, output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


def _gone() -> tuple[str, ...]:
    return tuple(error.__name__ for error in GONE)


def _waiting(url: str, count: int) -> Any:
    async def check() -> bool:
        return sum(1 for _, wait, _ in await app_backends(url) if wait == "Lock") == count

    return check


def _after(traffic: Traffic, count: int) -> Any:
    async def check() -> bool:
        return traffic.answered() >= count

    return check


def _no_app_connections(url: str) -> Any:
    async def check() -> bool:
        return await app_backends(url) == []

    return check
