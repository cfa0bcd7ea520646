"""Concurrent requests keep the rules: one account per email, always one active admin."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tests.plugins.user.conftest import USERS, UserApp, as_user


async def test_20_concurrent_signups_of_one_email_create_exactly_one_user(
    users: UserApp, admin: dict[str, Any]
) -> None:
    spellings = ["race@example.com", "RACE@example.com", "Race@Example.COM", "race@EXAMPLE.com"]

    responses = await asyncio.gather(
        *[
            users.client.post(
                USERS,
                headers=as_user(admin),
                json={"email": spellings[n % len(spellings)], "name": f"Racer {n}"},
            )
            for n in range(20)
        ]
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"user.email_taken"}
    assert await users.rows(
        'SELECT count(*) FROM "user" WHERE lower(email) = :e', e="race@example.com"
    ) == [(1,)]
    created = [e for e in await users.events() if e.get("email", "").lower() == "race@example.com"]
    assert len(created) == 1


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    users: UserApp, admin: dict[str, Any]
) -> None:
    for round_ in range(5):
        other = await users.create(f"other{round_}@example.com", "Other", role="admin")
        admins = [admin, other]

        responses = await asyncio.gather(
            *[
                users.client.patch(
                    f"{USERS}/{target['id']}", headers=as_user(actor), json={"role": "user"}
                )
                for actor, target in [(admin, other), (other, admin)]
            ]
        )

        # One demotion wins. The other is refused: 409 when it reached the last-admin rule,
        # or 403 when its actor had already been demoted by the time it was authorised.
        statuses = sorted(r.status_code for r in responses)
        assert statuses in ([200, 403], [200, 409]), [r.text for r in responses]
        remaining = await users.rows(
            "SELECT id FROM \"user\" WHERE role = 'admin' AND is_active AND deleted_at IS NULL"
        )
        assert len(remaining) == 1
        # Whoever is still admin carries on into the next round.
        admin = next(a for a in admins if a["id"] == remaining[0][0])
