"""Administration: reading, creating, changing, deleting and restoring any user."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.user.conftest import USERS, UserApp, as_user
from tests.support.problems import assert_problem

UNKNOWN = "usr_01JD8X0000000000000000000A"
MALFORMED = [
    pytest.param("nope", id="word"),
    pytest.param("usr_", id="prefix-only"),
    pytest.param("usr_01JD8X000000000000000000", id="short-ulid"),
    pytest.param("usr_01JD8X0000000000000000000I", id="not-crockford"),
    pytest.param("alp_01JD8X0000000000000000000A", id="other-prefix"),
    pytest.param("usr_" + "0" * 300, id="very-long"),
    pytest.param("usr_01JD8X0000000000000000000a", id="lowercase"),
]


# GET /{user_id}


async def test_a_user_reads_themselves_an_admin_reads_anyone(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    own = await users.client.get(f"{USERS}/{alice['id']}", headers=as_user(alice))
    assert (own.status_code, own.json()) == (200, alice)
    by_admin = await users.client.get(f"{USERS}/{alice['id']}", headers=as_user(admin))
    assert (by_admin.status_code, by_admin.json()) == (200, alice)


async def test_another_users_account_is_404_not_403(
    users: UserApp, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    seen = await users.client.get(f"{USERS}/{bob['id']}", headers=as_user(alice))
    unknown = await users.client.get(f"{USERS}/{UNKNOWN}", headers=as_user(alice))

    assert_problem(seen, 404, "user.not_found")
    assert_problem(unknown, 404, "user.not_found")
    assert seen.json()["title"] == unknown.json()["title"]  # nothing tells them apart


async def test_unknown_and_deleted_users_are_404_even_for_an_admin(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    assert (
        await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))
    ).status_code == 204
    for user_id in (UNKNOWN, alice["id"]):
        response = await users.client.get(f"{USERS}/{user_id}", headers=as_user(admin))
        assert_problem(response, 404, "user.not_found")


@pytest.mark.parametrize("user_id", MALFORMED)
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"name": "X"}),
        ("DELETE", "", None),
        ("POST", "/restore", None),
    ],
)
async def test_a_malformed_id_is_404_never_500(
    users: UserApp, admin: dict[str, Any], user_id: str, method: str, suffix: str, body: Any
) -> None:
    response = await users.client.request(
        method, f"{USERS}/{user_id}{suffix}", headers=as_user(admin), json=body
    )
    assert_problem(response, 404, "user.not_found")


async def test_reading_a_user_without_a_principal_is_401(
    users: UserApp, alice: dict[str, Any]
) -> None:
    assert_problem(await users.client.get(f"{USERS}/{alice['id']}"), 401, "core.unauthorized")


# Admin-only routes refuse everyone else


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"email": "new@example.com", "name": "New"}),
        ("PATCH", "/{id}", {"name": "X"}),
        ("DELETE", "/{id}", None),
        ("POST", "/{id}/restore", None),
    ],
)
async def test_admin_routes_are_403_for_users_and_401_for_anonymous(
    users: UserApp, alice: dict[str, Any], bob: dict[str, Any], method: str, path: str, body: Any
) -> None:
    url = USERS + path.format(id=bob["id"])
    as_alice = await users.client.request(method, url, headers=as_user(alice), json=body)
    anonymous = await users.client.request(method, url, json=body)

    assert_problem(as_alice, 403, "core.forbidden")
    assert_problem(anonymous, 401, "core.unauthorized")
    listed = await users.rows('SELECT email, name, deleted_at FROM "user" ORDER BY email')
    assert listed == [("Alice@Example.com", "Alice", None), ("bob@example.com", "Bob", None)]


# POST /


async def test_an_admin_creates_a_user(users: UserApp, admin: dict[str, Any]) -> None:
    response = await users.client.post(
        USERS, headers=as_user(admin), json={"email": " Carol@Example.com ", "name": "Carol"}
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "Carol@Example.com"
    assert (created["role"], created["is_active"], created["email_verified"]) == (
        "user", True, False
    )  # fmt: skip
    fetched = await users.client.get(f"{USERS}/{created['id']}", headers=as_user(admin))
    assert fetched.json() == created


async def test_an_email_is_unique_ignoring_case(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    response = await users.client.post(
        USERS, headers=as_user(admin), json={"email": "ALICE@example.COM", "name": "Imposter"}
    )

    body = assert_problem(response, 409, "user.email_taken")
    assert "ALICE@example.COM" in body["detail"]
    assert await users.rows('SELECT count(*) FROM "user"') == [(2,)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "X"}, "email"),
        ({"email": "a@", "name": "X"}, "email"),
        ({"email": "a@example.com"}, "name"),
        ({"email": "a@example.com", "name": "X", "role": "root"}, "role"),
        ({"email": "a@example.com", "name": "X", "is_active": False}, "is_active"),
        ({"email": "a" * 310 + "@example.com", "name": "X"}, "email"),
    ],
)
async def test_creating_a_user_with_bad_input_is_422_naming_the_field(
    users: UserApp, admin: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = await users.client.post(USERS, headers=as_user(admin), json=body)
    problem = assert_problem(response, 422, "core.validation_error")
    assert field in {e["field"] for e in problem["errors"]}


async def test_a_deleted_users_email_can_be_used_again(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))

    again = await users.client.post(
        USERS, headers=as_user(admin), json={"email": "alice@example.com", "name": "Alice 2"}
    )

    assert again.status_code == 201, again.text
    assert again.json()["id"] != alice["id"]
    assert await users.rows(
        'SELECT email, deleted_at IS NULL FROM "user" WHERE lower(email) = :e ORDER BY id',
        e="alice@example.com",
    ) == [("Alice@Example.com", False), ("alice@example.com", True)]


# PATCH /{user_id}


async def test_an_admin_changes_name_role_and_status(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    response = await users.client.patch(
        f"{USERS}/{alice['id']}",
        headers=as_user(admin),
        json={"name": "Alice Admin", "role": "admin", "is_active": True},
    )

    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["role"]) == ("Alice Admin", "admin")
    # The new role applies on Alice's very next request: she may now list users.
    assert (await users.client.get(USERS, headers=as_user(alice))).status_code == 200


@pytest.mark.parametrize("field", ["email", "id", "email_verified", "created_at", "password"])
async def test_an_admin_cannot_set_other_fields(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any], field: str
) -> None:
    response = await users.client.patch(
        f"{USERS}/{alice['id']}", headers=as_user(admin), json={field: "x"}
    )
    body = assert_problem(response, 422, "core.validation_error")
    assert [e["field"] for e in body["errors"]] == [field]


async def test_demotion_and_deactivation_apply_to_live_tokens(
    users: UserApp, admin: dict[str, Any]
) -> None:
    other = await users.create("root@example.com", "Other Admin", role="admin")
    assert (await users.client.get(USERS, headers=as_user(other))).status_code == 200

    demoted = await users.client.patch(
        f"{USERS}/{other['id']}", headers=as_user(admin), json={"role": "user"}
    )
    assert demoted.status_code == 200, demoted.text
    assert_problem(await users.client.get(USERS, headers=as_user(other)), 403, "core.forbidden")

    deactivated = await users.client.patch(
        f"{USERS}/{other['id']}", headers=as_user(admin), json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert_problem(
        await users.client.get(f"{USERS}/me", headers=as_user(other)), 401, "core.unauthorized"
    )


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    users: UserApp, admin: dict[str, Any], change: dict[str, Any]
) -> None:
    inactive_admin = await users.create("off@example.com", "Off", role="admin", active=False)
    assert inactive_admin["role"] == "admin"  # inactive admins do not count

    response = await users.client.patch(
        f"{USERS}/{admin['id']}", headers=as_user(admin), json=change
    )

    body = assert_problem(response, 409, "user.last_admin")
    assert admin["email"] in body["detail"]
    me = (await users.client.get(f"{USERS}/me", headers=as_user(admin))).json()
    assert (me["role"], me["is_active"]) == ("admin", True)


async def test_with_two_admins_one_may_step_down(users: UserApp, admin: dict[str, Any]) -> None:
    other = await users.create("root@example.com", "Other Admin", role="admin")

    stepped_down = await users.client.patch(
        f"{USERS}/{admin['id']}", headers=as_user(admin), json={"role": "user"}
    )
    assert stepped_down.status_code == 200, stepped_down.text

    last = await users.client.patch(
        f"{USERS}/{other['id']}", headers=as_user(other), json={"role": "user"}
    )
    assert_problem(last, 409, "user.last_admin")


async def test_patching_a_deleted_user_is_404_and_changes_nothing(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))

    response = await users.client.patch(
        f"{USERS}/{alice['id']}", headers=as_user(admin), json={"name": "Zombie"}
    )

    assert_problem(response, 404, "user.not_found")
    assert await users.rows('SELECT name FROM "user" WHERE id = :id', id=alice["id"]) == [
        ("Alice",)
    ]


async def test_patching_an_unknown_user_is_404(users: UserApp, admin: dict[str, Any]) -> None:
    response = await users.client.patch(
        f"{USERS}/{UNKNOWN}", headers=as_user(admin), json={"name": "X"}
    )
    assert_problem(response, 404, "user.not_found")


# DELETE /{user_id} and POST /{user_id}/restore


async def test_an_admin_deletes_and_restores_a_user(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    deleted = await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_problem(
        await users.client.get(f"{USERS}/me", headers=as_user(alice)), 401, "core.unauthorized"
    )

    restored = await users.client.post(f"{USERS}/{alice['id']}/restore", headers=as_user(admin))

    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted_at"] is None
    assert restored.json()["email"] == alice["email"]
    assert (await users.client.get(f"{USERS}/me", headers=as_user(alice))).status_code == 200


async def test_deleting_twice_or_an_unknown_user_is_404(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    url = f"{USERS}/{alice['id']}"
    assert (await users.client.delete(url, headers=as_user(admin))).status_code == 204
    assert_problem(await users.client.delete(url, headers=as_user(admin)), 404, "user.not_found")
    assert_problem(
        await users.client.delete(f"{USERS}/{UNKNOWN}", headers=as_user(admin)),
        404,
        "user.not_found",
    )


async def test_the_last_admin_cannot_be_deleted(users: UserApp, admin: dict[str, Any]) -> None:
    response = await users.client.delete(f"{USERS}/{admin['id']}", headers=as_user(admin))
    assert_problem(response, 409, "user.last_admin")


async def test_restoring_is_refused_when_the_email_was_taken_meanwhile(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    await users.client.delete(f"{USERS}/{alice['id']}", headers=as_user(admin))
    newcomer = await users.create("ALICE@example.com", "New Alice")

    response = await users.client.post(f"{USERS}/{alice['id']}/restore", headers=as_user(admin))

    body = assert_problem(response, 409, "user.email_taken")
    assert alice["email"] in body["detail"]
    rows = await users.rows('SELECT id, deleted_at IS NULL FROM "user" WHERE id IN (:a, :n)',
                            a=alice["id"], n=newcomer["id"])  # fmt: skip
    assert sorted(rows) == sorted([(alice["id"], False), (newcomer["id"], True)])


async def test_restoring_a_live_user_changes_nothing(
    users: UserApp, admin: dict[str, Any], alice: dict[str, Any]
) -> None:
    response = await users.client.post(f"{USERS}/{alice['id']}/restore", headers=as_user(admin))
    assert (response.status_code, response.json()) == (200, alice)


async def test_restoring_an_unknown_user_is_404(users: UserApp, admin: dict[str, Any]) -> None:
    response = await users.client.post(f"{USERS}/{UNKNOWN}/restore", headers=as_user(admin))
    assert_problem(response, 404, "user.not_found")
