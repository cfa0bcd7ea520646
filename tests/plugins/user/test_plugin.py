"""The `user` plugin as the core sees it: registration, OpenAPI, switching it off."""

from __future__ import annotations

from typing import Any

from core.plugin import discover
from tests.plugins.user.conftest import USERS, UserApp, as_user
from tests.support.problems import assert_problem


def test_registered_through_the_projects_entry_point() -> None:
    [user] = [p for p in discover() if p.name == "user"]
    assert user.distribution == "courtyard"
    assert user.entry_point.value == "plugins.user:plugin"
    plugin = user.load()
    assert (plugin.url_prefix, plugin.openapi_tag) == ("users", "users")


async def test_every_route_is_documented_under_the_users_tag(users: UserApp) -> None:
    document = (await users.client.get("/openapi.json")).json()

    assert "users" in {tag["name"] for tag in document["tags"]}
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        if path.startswith(USERS)
        for method, operation in item.items()
    }
    assert set(operations) == {
        ("GET", f"{USERS}/me"), ("PATCH", f"{USERS}/me"), ("DELETE", f"{USERS}/me"),
        ("GET", USERS), ("POST", USERS), ("GET", f"{USERS}/stats"),
        ("GET", f"{USERS}/{{user_id}}"), ("PATCH", f"{USERS}/{{user_id}}"),
        ("DELETE", f"{USERS}/{{user_id}}"), ("POST", f"{USERS}/{{user_id}}/restore"),
    }  # fmt: skip
    for (method, path), operation in operations.items():
        assert operation["tags"] == ["users"], (method, path)
        assert "401" in operation["responses"], (method, path)
        problem = operation["responses"]["401"]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"].endswith("/Problem")
    assert "403" in operations[("GET", USERS)]["responses"]
    assert "403" in operations[("GET", f"{USERS}/stats")]["responses"]
    assert "404" in operations[("GET", f"{USERS}/{{user_id}}")]["responses"]
    assert "409" in operations[("POST", f"{USERS}/{{user_id}}/restore")]["responses"]
    user_schema = document["components"]["schemas"]["User"]
    assert set(user_schema["properties"]) >= {"id", "email", "role", "is_active", "deleted_at"}


async def test_without_an_authenticator_every_route_is_401(
    user_dists: None, app_client: Any
) -> None:
    async with app_client(enabled_plugins="user") as client:
        for method, path in [("GET", f"{USERS}/me"), ("GET", USERS), ("DELETE", f"{USERS}/me")]:
            response = await client.request(method, path, headers=as_user("usr_x"))
            assert_problem(response, 401, "core.unauthorized")


async def test_disabling_the_plugin_removes_its_routes(user_dists: None, app_client: Any) -> None:
    async with app_client(enabled_plugins="user,testauth") as client:
        assert (await client.get(f"{USERS}/me")).status_code == 401

    async with app_client(enabled_plugins="testauth") as client:
        response = await client.get(f"{USERS}/me", headers=as_user("usr_x"))
        assert_problem(response, 404, "core.not_found")
        document = (await client.get("/openapi.json")).json()
        assert not [p for p in document["paths"] if p.startswith(USERS)]
        assert "users" not in {tag["name"] for tag in document.get("tags", [])}
        assert "user" not in client.app.state.kernel.plugin_names  # type: ignore[attr-defined]
