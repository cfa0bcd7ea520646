"""A rolling restart under steady load: every request answered 2xx through HAProxy.

Clients keep signing in, reading and changing their profiles through the balancer while
each instance in turn is sent SIGTERM, exits, is started again and taken back into
rotation. Nothing between them hides a failure: HAProxy retries only connection failures,
on the same server, and never sends a request elsewhere (tests/support/haproxy.py). What
keeps the clients whole is the instance's drain (COURTYARD_SHUTDOWN_DRAIN): its
`/health/ready` answers 503 at once while it keeps serving, so HAProxy takes it out before
it stops listening. With `COURTYARD_SHUTDOWN_DRAIN=0` the same test fails: HAProxy keeps
sending requests to the instance until its checks notice, the port is closed, and after
its retries the clients get 503 (11 of 597 requests in one run).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.scale.clients import SteadyLoad, sign_up
from tests.scale.instances import STOP_DEADLINE, Instance
from tests.scale.topology import CHECK, DRAIN, Topology

pytestmark = pytest.mark.scale

WORKERS = 5  # concurrent clients, each with its own account
WARM_UP = 50  # answers before the first restart
PER_RESTART = 30  # answers the load must get while each instance is away, at least
BACK_WITHIN = 10.0  # seconds for HAProxy to put a restarted instance back


@dataclass
class Restart:
    instance: str
    out_after: float  # seconds from SIGTERM to HAProxy marking it DOWN
    exit_code: int
    exited_after: float  # seconds from SIGTERM to the process's exit
    back_after: float  # seconds from SIGTERM to HAProxy marking it UP again
    answered: int  # requests the clients sent meanwhile


async def restart(scale: Topology, instance: Instance, load: SteadyLoad) -> Restart:
    """SIGTERM, wait for it to exit, start it again, wait until HAProxy has it back."""
    balancer = scale.balancer
    started = time.monotonic()
    instance.terminate()
    out_after = await asyncio.to_thread(
        balancer.wait_for, instance.name, "DOWN", DRAIN + STOP_DEADLINE
    )
    exit_code = await asyncio.to_thread(instance.wait_exit, DRAIN + STOP_DEADLINE)
    exited_after = time.monotonic() - started
    instance.start()
    await asyncio.to_thread(instance.wait_live)
    await asyncio.to_thread(balancer.wait_for, instance.name, "UP", BACK_WITHIN)
    return Restart(
        instance.name,
        out_after,
        exit_code,
        exited_after,
        time.monotonic() - started,
        load.answered(since=started),
    )


async def test_a_rolling_restart_under_steady_load_answers_every_request(
    scale: Topology,
) -> None:
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        accounts = [await sign_up(client, f"steady{n}") for n in range(WORKERS)]
    load = SteadyLoad(scale.url, accounts)
    stop = asyncio.Event()
    traffic = asyncio.create_task(load.run(stop))
    restarts: list[Restart] = []
    try:
        await load.until_answered(WARM_UP)
        for instance in scale.instances:
            restarts.append(await restart(scale, instance, load))
        # Every instance, restarted, serves its share again.
        back = time.monotonic()
        served_back = scale.balancer.answered()
        await load.until_answered(WARM_UP, since=back)
        served_after = scale.balancer.answered()
    finally:
        stop.set()
        await traffic

    report = "\n".join(str(r) for r in restarts)
    print(f"{len(load.outcomes)} requests, {len(load.failures())} failed\n{report}")
    failures = load.failures()
    assert not failures, (
        f"{len(failures)} of {len(load.outcomes)} requests failed, first ones: "
        f"{failures[:10]}\n{report}\n{scale.logs()}"
    )
    for r in restarts:
        assert r.exit_code == 0, f"{r}\n{scale.logs()}"
        # Out of rotation before the drain ended: the drain covers HAProxy's checks.
        assert r.out_after < DRAIN, f"{r} (HAProxy needs up to {CHECK.out_within:g}s)"
        assert r.exited_after >= DRAIN, r
        assert r.answered >= PER_RESTART, f"too little traffic during the restart: {r}"
    for name, count in served_after.items():
        assert count > served_back[name], (name, served_back, served_after)
    for instance in scale.instances:
        output = instance.output(None)
        assert "Drain over" in output, instance.output()
        assert "Traceback" not in output, output[max(0, output.index("Traceback") - 2000) :]
