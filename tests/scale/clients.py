"""What the scale tests do as clients: accounts, sign-ins, and a steady stream of requests
whose every outcome is kept.

An outcome is what the client saw: the status code, or the name of the transport error
(connection refused, closed before the answer, timed out). A test behind a load balancer
asserts on those alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

AUTH = "/api/v1/auth"
USERS = "/api/v1/users"
ME = f"{USERS}/me"
READY = "/health/ready"
PASSWORD = "correct horse battery staple"
TIMEOUT = 30.0  # seconds: a request not answered by then is a failure the client sees


@dataclass
class Account:
    email: str
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def new_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(client: httpx.AsyncClient, label: str, name: str = "Scale") -> Account:
    email = new_email(label)
    response = await client.post(
        f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(email, body["user"]["id"], body["access_token"], body["refresh_token"])


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(f"{AUTH}/login", json={"email": email, "password": password})


async def signed_in(client: httpx.AsyncClient, account: Account) -> Account:
    """A new session of `account`: its tokens."""
    response = await sign_in(client, account.email)
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(account.email, account.user_id, body["access_token"], body["refresh_token"])


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic()
    answered: float
    request: str  # "GET /me", "login", "PATCH /me"
    result: str  # the status code, or the transport error's name

    @property
    def ok(self) -> bool:
        return self.result.isdigit() and 200 <= int(self.result) < 300


@dataclass
class SteadyLoad:
    """`workers` clients, each with its own account, sending one request after another
    (`pause` seconds apart) to `url`: mostly `GET /users/me`, a sign-in every tenth
    request (its new access token used from then on), a profile PATCH every fourth."""

    url: str
    accounts: list[Account]
    pause: float = 0.01
    outcomes: list[Outcome] = field(default_factory=list)

    def answered(self, since: float = 0.0) -> int:
        """Requests sent from `since` (time.monotonic()) on that have an outcome."""
        return sum(1 for o in self.outcomes if o.sent >= since)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._worker(a, stop) for a in self.accounts))

    async def until_answered(self, count: int, since: float = 0.0, within: float = 30) -> None:
        """Wait until `count` requests sent from `since` on have been answered (or failed)."""
        deadline = time.monotonic() + within
        while self.answered(since) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the load got {self.answered(since)} answers in {within:g}s, not {count}"
                )
            await asyncio.sleep(0.05)

    async def _worker(self, account: Account, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT) as client:
            n = 0
            while not stop.is_set():
                n += 1
                account = await self._one(client, account, n)
                await asyncio.sleep(self.pause)

    async def _one(self, client: httpx.AsyncClient, account: Account, n: int) -> Account:
        sent = time.monotonic()
        request: str
        body: dict[str, Any] | None = None
        try:
            if n % 10 == 0:
                request = "login"
                response = await sign_in(client, account.email)
                if response.status_code == 200:
                    body = response.json()
            elif n % 4 == 0:
                request = "PATCH /me"
                response = await client.patch(ME, json={"name": f"W {n}"}, headers=account.headers)
            else:
                request = "GET /me"
                response = await client.get(ME, headers=account.headers)
            result = str(response.status_code)
        except httpx.TransportError as exc:
            result = type(exc).__name__
        self.outcomes.append(Outcome(sent, time.monotonic(), request, result))
        if body is not None:
            return Account(
                account.email, account.user_id, body["access_token"], account.refresh_token
            )
        return account
