"""The shortest happy path, so a broken fixture shows up before the detailed tests."""

from __future__ import annotations

from tests.plugins.auth.conftest import AuthApp


async def test_signed_up_user_reads_their_account(auth: AuthApp) -> None:
    signed_in = await auth.signup("ann@example.com", name="Ann")

    response = await auth.me(signed_in)

    assert response.status_code == 200
    assert response.json()["email"] == "ann@example.com"
