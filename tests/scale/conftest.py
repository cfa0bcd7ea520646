"""The scale suite: several `courtyard serve` instances behind HAProxy, on a private
PostgreSQL primary and streaming replica through pgbouncer, sharing the machine's Redis
(tests/scale/topology.py). The deployment starts once for the whole run (about 10 s) and
is torn down at the end, however the run ends; each test leaves it as it found it.

Run with `make scale` (`pytest -m scale tests/scale`): the default run excludes the
`scale` marker. A missing component (PostgreSQL's server programs, pgbouncer, HAProxy,
a Redis answering on 127.0.0.1:6379) fails every test with one line saying what to
install; nothing is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.scale.clients import READY
from tests.scale.requirements import missing
from tests.scale.topology import Topology, topology

SETTLE_WITHIN = 20.0  # seconds for the deployment to be all in rotation between tests


@pytest.fixture(scope="session")
def deployment() -> Iterator[Topology]:
    problems = missing()
    if problems:
        pytest.fail("the scale suite needs: " + "; ".join(problems), pytrace=False)
    with topology() as running:
        yield running


@pytest.fixture
def scale(deployment: Topology) -> Topology:
    """The deployment, every instance in rotation and reading from a replica it finds
    healthy (a test that stopped or paused something has put it back)."""
    deadline = time.monotonic() + SETTLE_WITHIN
    while True:
        states = deployment.balancer.states()
        replica = [_replica_check(i.url) for i in deployment.instances]
        if set(states.values()) == {"UP"} and set(replica) == {"ok"}:
            return deployment
        if time.monotonic() > deadline:
            pytest.fail(
                f"the deployment did not settle in {SETTLE_WITHIN:g}s: HAProxy {states}, "
                f"replica checks {replica}\n{deployment.logs()}"
            )
        time.sleep(0.2)


def _replica_check(url: str) -> str:
    try:
        response = httpx.get(url + READY, timeout=5)
    except httpx.TransportError as exc:
        return type(exc).__name__
    checks = response.json().get("checks", {}) if response.content else {}
    return str(checks.get("database.replica", response.status_code))
