"""Per-request cost without sockets: drive an app's ASGI callable directly.

    python -m bench.inprocess courtyard users_me,users_list [--requests 3000] [--concurrency 8]
    python -m bench.inprocess courtyard auth_login --hash-stubbed

For profiling and for before/after comparisons of one change: no uvicorn, no HTTP parsing,
no wrk, so what is left is the app's own work (and the database's). Prints requests per
second, CPU microseconds per request (this process only) and the status codes. Uses the
bench database as `make bench` left it (`--seed` makes it afresh). Run it pinned, e.g.
`taskset -c 0 python -m bench.inprocess …`, and under `py-spy record` to see where the
time goes. Not part of `make bench`'s results: its figures leave out the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import database, stubbed_hash
from bench.config import ADMIN_EMAIL, PORT, SCENARIOS, Scenario
from bench.run import DB_NAME, app_env
from plugins.auth.settings import AuthSettings

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def seeded_ids(url: str) -> dict[str, str] | None:
    """The ids `database.seed` returned, read back from the bench database (None if it
    is missing or not seeded)."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        ids: dict[str, str] = {}
        for who, email in (("admin", ADMIN_EMAIL), ("user", "user0@bench.example")):
            user = await conn.fetchval('SELECT id FROM "user" WHERE email = $1', email)
            if user is None:
                return None
            first = "SELECT id FROM auth_session WHERE user_id = $1 ORDER BY id LIMIT 1"
            ids[who], ids[f"{who}_session"] = user, await conn.fetchval(first, user)
        return ids
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


def load_app(name: str, hash_stubbed: bool = False) -> ASGI:
    if name == "courtyard" and hash_stubbed:
        return stubbed_hash.create_app()
    if name == "courtyard":
        from core.app import create_app

        return create_app()
    if name == "reference":
        from bench.reference.app import app

        return app
    from bench.floor.app import app as floor

    return floor  # type: ignore[no-any-return]


def request(scenario: Scenario, body: bytes, token: str | None) -> dict[str, Any]:
    path, _, query = scenario.path.partition("?")
    headers = [(b"host", f"127.0.0.1:{PORT}".encode())]
    if body:
        headers += [(b"content-type", b"application/json")]
        headers += [(b"content-length", str(len(body)).encode())]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": scenario.method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", PORT),
    }  # fmt: skip


async def call(app: ASGI, scope: dict[str, Any], body: bytes, statuses: Counter[int]) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    await app(scope, receive, send)


async def measure(
    app: ASGI, scenario: Scenario, env: dict[str, str], ids: dict[str, str], args: Any
) -> None:
    settings = AuthSettings()
    token = database.access_token(ids, scenario.auth, settings) if scenario.auth else None
    count = args.requests // 10 if scenario.name == "auth_login" else args.requests
    workers = min(args.concurrency, scenario.connections)
    bodies = [scenario.body.encode() if scenario.body else b""] * (count + 50 * workers)
    if scenario.refresh_tokens:
        target = Path(tempfile.mkdtemp()) / "tokens.txt"
        await database.refresh_tokens(env["BENCH_ASYNCPG_URL"], ids["user"], len(bodies), target)
        secrets = target.read_text().split()
        bodies = [json.dumps({"refresh_token": s}).encode() for s in secrets]
    if scenario.name == "uploads_presign":
        await database.clear_uploads(env["BENCH_ASYNCPG_URL"])
    statuses: Counter[int] = Counter()
    queue = iter(bodies)

    async def worker(n: int) -> None:
        for _ in range(n):
            body = next(queue)
            await call(app, request(scenario, body, token), body, statuses)

    await asyncio.gather(*(worker(50) for _ in range(workers)))  # warm-up
    statuses.clear()
    each = count // workers
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(each) for _ in range(workers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = each * workers
    print(
        f"{args.app:10} {scenario.name:16} {done / elapsed:8.0f} req/s "
        f"{cpu / done * 1e6:7.0f} us CPU/req  {dict(statuses)}",
        flush=True,
    )


async def main(args: Any, env: dict[str, str], ids: dict[str, str]) -> None:
    app = load_app(args.app, args.hash_stubbed)
    router = getattr(app, "router", None)
    lifespan = router.lifespan_context(app) if router is not None else None
    if lifespan is not None:
        await lifespan.__aenter__()
    try:
        for name in args.scenarios.split(","):
            scenario = next(s for s in SCENARIOS if s.name == name)
            await measure(app, scenario, env, ids, args)
    finally:
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("courtyard", "reference", "floor"))
    parser.add_argument("scenarios", help="comma-separated, e.g. users_me,users_list")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", action="store_true", help="recreate and seed the database")
    stubbed_hash.add_option(parser)
    parser.add_argument(
        "--server", default=os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432")
    )
    args = parser.parse_args(argv)
    stubbed_hash.check_option(parser, args)
    settings = AuthSettings()
    env = app_env(args.server, Path(tempfile.mkdtemp()), settings)
    os.environ.update(env)
    url = env["BENCH_ASYNCPG_URL"]
    ids = None if args.seed else asyncio.run(seeded_ids(url))
    if ids is None:
        asyncio.run(database.recreate(args.server, DB_NAME))
        database.migrate(Path(sys.executable).parent / "courtyard", env)
        ids = asyncio.run(database.seed(url, settings))
    import uvloop

    uvloop.run(main(args, env, ids))


if __name__ == "__main__":
    cli()
