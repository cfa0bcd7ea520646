"""What one instance learns reaches the others: a logout, and failed sign-ins.

- A logout on one instance: the session's access tokens are refused (401) on every
  instance within the auth plugin's revocation interval (COURTYARD_AUTH__REVOCATION_CHECK_
  INTERVAL, 1 s here): each instance reloads the revoked sessions from the database once
  its copy is older than that (plugins/auth/revocation.py).
- Failed sign-ins spread over the instances count against one per-account limit, kept in
  the shared Redis (COURTYARD_REDIS_URL): the next attempt gets 429 on every instance. With
  each instance counting in its own memory, none would reach the limit.

Each test asks chosen instances directly, not HAProxy, so that it knows which one answers.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.scale.clients import AUTH, ME, PASSWORD, Account, sign_in, sign_up, signed_in
from tests.scale.instances import Instance
from tests.scale.topology import LOGIN_LIMIT_PER_ACCOUNT, REVOCATION_INTERVAL, Topology
from tests.support.problems import assert_problem

pytestmark = pytest.mark.scale

# Past the interval: the reload's own query, and a poll every POLL seconds.
SLACK = 0.5
POLL = 0.05


async def refused_after(instance: Instance, account: Account, since: float) -> float:
    """Seconds from `since` until `GET /users/me` with the account's token answers 401 on
    `instance`; every answer before must be 200."""
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        while True:
            response = await client.get(ME, headers=account.headers)
            if response.status_code == 401:
                return time.monotonic() - since
            assert response.status_code == 200, (instance.name, response.text)
            if time.monotonic() - since > REVOCATION_INTERVAL + 10:
                raise AssertionError(f"{instance.name} still accepts the token")
            await asyncio.sleep(POLL)


async def test_a_logout_on_one_instance_is_refused_on_every_instance_within_the_interval(
    scale: Topology,
) -> None:
    first, where_logged_out, *_ = scale.instances
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        account = await signed_in(client, await sign_up(client, "logout"))
    for instance in scale.instances:  # accepted everywhere (each has loaded its copy)
        async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
            response = await client.get(ME, headers=account.headers)
            assert response.status_code == 200, (instance.name, response.text)
            assert response.json()["id"] == account.user_id

    async with httpx.AsyncClient(base_url=where_logged_out.url, timeout=10) as client:
        logout = await client.post(
            f"{AUTH}/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
        )
        assert logout.status_code == 204, logout.text
    logged_out = time.monotonic()
    delays = await asyncio.gather(
        *(refused_after(instance, account, logged_out) for instance in scale.instances)
    )

    by_instance = {i.name: round(d, 3) for i, d in zip(scale.instances, delays, strict=True)}
    assert max(delays) <= REVOCATION_INTERVAL + SLACK, by_instance
    # Where the logout happened it applies at once, without waiting for a reload.
    assert by_instance[where_logged_out.name] < POLL + SLACK, by_instance
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": account.refresh_token}
        )
    assert refreshed.status_code == 401, refreshed.text


async def test_failed_sign_ins_on_different_instances_count_against_one_limit(
    scale: Topology,
) -> None:
    async with httpx.AsyncClient(base_url=scale.url, timeout=30) as client:
        account = await sign_up(client, "limited")
    # One wrong password per instance, round and round, up to the limit: each refused
    # as a wrong password (401), not yet throttled.
    for attempt in range(LOGIN_LIMIT_PER_ACCOUNT):
        instance = scale.instances[attempt % len(scale.instances)]
        async with httpx.AsyncClient(base_url=instance.url, timeout=30) as client:
            failed = await sign_in(client, account.email, "not the password at all")
        assert failed.status_code == 401, (instance.name, failed.text)

    # The next attempt, even with the right password, is refused on every instance (and
    # through HAProxy).
    for url in [*(i.url for i in scale.instances), scale.url]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            throttled = await sign_in(client, account.email, PASSWORD)
        assert_problem(throttled, 429, "auth.too_many_attempts")
        assert int(throttled.headers["retry-after"]) > 0, url
