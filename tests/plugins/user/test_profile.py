"""`/api/v1/users/me`: what any signed-in user can see and do about their own account."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.user.conftest import PLUGINS, USERS, UserApp, as_user
from tests.support.problems import assert_problem

ME = f"{USERS}/me"
DTO_FIELDS = {
    "id", "email", "name", "role", "is_active", "email_verified",
    "created_at", "updated_at", "deleted_at",
}  # fmt: skip


async def test_me_is_the_callers_account_as_a_dto(users: UserApp, alice: dict[str, Any]) -> None:
    response = await users.client.get(ME, headers=as_user(alice))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == DTO_FIELDS
    assert body["id"] == alice["id"]
    assert body["id"].startswith("usr_")
    assert body["email"] == "Alice@Example.com"  # stored as given
    assert (body["name"], body["role"], body["is_active"]) == ("Alice", "user", True)
    assert body["email_verified"] is False
    assert body["deleted_at"] is None
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_me_costs_one_query(users: UserApp, alice: dict[str, Any]) -> None:
    """The account check already loaded the caller's row; `/me` answers from it."""
    async with users.counting_queries() as statements:
        response = await users.client.get(ME, headers=as_user(alice))
    assert response.status_code == 200
    assert len(statements) == 1, statements


async def test_me_without_a_principal_is_401(users: UserApp) -> None:
    response = await users.client.get(ME)
    body = assert_problem(response, 401, "core.unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == ME


@pytest.mark.parametrize(
    "claimed",
    [
        pytest.param("usr_01JD8X0000000000000000000A", id="unknown-id"),
        pytest.param("usr_not-a-ulid", id="malformed-user-id"),
    ],
)
async def test_a_user_principal_without_an_account_is_401(users: UserApp, claimed: str) -> None:
    assert_problem(await users.client.get(ME, headers=as_user(claimed)), 401, "core.unauthorized")


@pytest.mark.parametrize("claimed", ["svc_01JD8X0000000000000000000A", "api-client"])
async def test_a_principal_that_is_not_a_user_acts_but_has_no_account(
    users: UserApp, admin: dict[str, Any], claimed: str
) -> None:
    """Service accounts and API clients pass the account check unchanged."""
    assert_problem(await users.client.get(ME, headers=as_user(claimed)), 404, "user.not_found")
    # Their roles are their authenticator's business, not the user plugin's.
    listed = await users.client.get(USERS, headers=as_user(f"{claimed}:admin"))
    assert listed.status_code == 200, listed.text
    refused = await users.client.get(USERS, headers=as_user(claimed))
    assert_problem(refused, 403, "core.forbidden")


async def test_a_user_claiming_admin_in_the_token_is_still_a_user(
    users: UserApp, alice: dict[str, Any]
) -> None:
    response = await users.client.get(USERS, headers=as_user(f"{alice['id']}:admin"))
    assert_problem(response, 403, "core.forbidden")


async def test_a_deactivated_user_cannot_act(users: UserApp) -> None:
    inactive = await users.create("idle@example.com", "Idle", active=False)
    response = await users.client.get(ME, headers=as_user(inactive))
    assert_problem(response, 401, "core.unauthorized")


async def test_a_deleted_user_cannot_act(users: UserApp, alice: dict[str, Any]) -> None:
    assert (await users.client.delete(ME, headers=as_user(alice))).status_code == 204
    for method, path in [("GET", ME), ("PATCH", ME), ("GET", f"{USERS}/{alice['id']}")]:
        response = await users.client.request(
            method, path, headers=as_user(alice), json={} if method == "PATCH" else None
        )
        assert_problem(response, 401, "core.unauthorized")


async def test_patch_me_changes_the_name(users: UserApp, alice: dict[str, Any]) -> None:
    response = await users.client.patch(ME, headers=as_user(alice), json={"name": "  Alice B  "})

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Alice B"
    assert response.json()["updated_at"] > alice["updated_at"]
    assert (await users.client.get(ME, headers=as_user(alice))).json()["name"] == "Alice B"
    assert await users.rows('SELECT name FROM "user" WHERE id = :id', id=alice["id"]) == [
        ("Alice B",)
    ]


async def test_patch_me_with_nothing_changes_nothing(users: UserApp, alice: dict[str, Any]) -> None:
    for body in ({}, {"name": "Alice"}):
        response = await users.client.patch(ME, headers=as_user(alice), json=body)
        assert response.status_code == 200, response.text
        assert response.json() == alice
    assert [e["event"] for e in await users.events()] == ["user_created"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "admin"),
        ("is_active", False),
        ("email", "new@example.com"),
        ("id", "usr_01JD8X0000000000000000000A"),
        ("email_verified", True),
        ("deleted_at", None),
    ],
)
async def test_patch_me_refuses_what_is_not_the_callers_to_set(
    users: UserApp, alice: dict[str, Any], field: str, value: Any
) -> None:
    response = await users.client.patch(ME, headers=as_user(alice), json={field: value})

    body = assert_problem(response, 422, "core.validation_error")
    assert [e["field"] for e in body["errors"]] == [field]
    stored = (await users.client.get(ME, headers=as_user(alice))).json()
    assert stored == alice


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        pytest.param(None, "value_error", id="null"),
        pytest.param("   ", "value_error", id="blank"),
        pytest.param("Al\x00ice", "value_error", id="control-character"),
        pytest.param("A" * 101, "string_too_long", id="over-the-configured-limit"),
        pytest.param("A" * 201, "string_too_long", id="over-the-column"),
        pytest.param(42, "string_type", id="not-a-string"),
    ],
)
async def test_patch_me_refuses_a_bad_name(
    users: UserApp, alice: dict[str, Any], name: Any, kind: str
) -> None:
    response = await users.client.patch(ME, headers=as_user(alice), json={"name": name})

    body = assert_problem(response, 422, "core.validation_error")
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("name", kind)]
    assert (await users.client.get(ME, headers=as_user(alice))).json()["name"] == "Alice"


async def test_the_name_limit_is_a_setting(user_dists: None, app_client: Any) -> None:
    async with app_client(
        enabled_plugins=PLUGINS, plugin_settings={"user": {"max_name_length": 5}}
    ) as client:
        users = UserApp(client)
        alice = await users.create("alice@example.com", "Alice")
        too_long = await client.patch(ME, headers=as_user(alice), json={"name": "Alicia"})
        body = assert_problem(too_long, 422, "core.validation_error")
        assert body["errors"][0]["field"] == "name"
        assert "at most 5 characters" in body["errors"][0]["message"]
        ok = await client.patch(ME, headers=as_user(alice), json={"name": "Ally"})
        assert ok.status_code == 200, ok.text


async def test_patch_me_without_a_principal_is_401(users: UserApp) -> None:
    assert_problem(await users.client.patch(ME, json={"name": "X"}), 401, "core.unauthorized")


async def test_delete_me_soft_deletes(users: UserApp, alice: dict[str, Any]) -> None:
    response = await users.client.delete(ME, headers=as_user(alice))

    assert response.status_code == 204
    assert response.content == b""
    [(deleted_at,)] = await users.rows(
        'SELECT deleted_at FROM "user" WHERE id = :id', id=alice["id"]
    )
    assert deleted_at is not None  # the row stays: soft delete


async def test_delete_me_as_the_last_admin_is_refused(
    users: UserApp, admin: dict[str, Any]
) -> None:
    response = await users.client.delete(ME, headers=as_user(admin))

    body = assert_problem(response, 409, "user.last_admin")
    assert "last active admin" in body["detail"]
    assert (await users.client.get(ME, headers=as_user(admin))).status_code == 200


async def test_delete_me_without_a_principal_is_401(users: UserApp) -> None:
    assert_problem(await users.client.delete(ME), 401, "core.unauthorized")
