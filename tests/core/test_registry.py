"""One registry: request code finds the app's services in the root container, and
`app.state` holds nothing but the kernel that owns it (core.state)."""

from __future__ import annotations

from typing import Any

import pytest
from dependency_injector import providers

from core.app import create_app
from core.hookspecs import NotReady, ReadinessCheck
from tests.conftest import make_settings, running


def test_the_app_keeps_only_the_kernel_on_its_state(main_plugins: None, database_url: str) -> None:
    app = create_app(make_settings(database_url, enabled_plugins="alpha"))
    kernel = app.state.kernel

    assert list(app.state) == ["kernel"]
    # Read-only views of the kernel, for tests and tools.
    assert app.state.database is kernel.container.database()
    assert app.state.plugin_manager is kernel.pm
    for name in ("kernel", "database", "plugin_manager"):
        with pytest.raises(AttributeError, match="set once"):
            setattr(app.state, name, object())


async def test_requests_read_the_root_container(main_plugins: None, app_client: Any) -> None:
    """What the root container gives is what requests see: here the readiness checks,
    gathered into it at startup, and a check a test puts in their place."""

    async def failing() -> None:
        raise NotReady("replaced")

    async with app_client(enabled_plugins="alpha") as client:
        root = client.app.state.kernel.container
        assert [c.name for c in root.readiness_checks()] == [
            "database",
            "migrations",
            "alpha.ready",
        ]
        assert (await client.get("/health/ready")).status_code == 200

        with root.readiness_checks.override(providers.Object((ReadinessCheck("x", failing),))):
            response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["checks"] == {"x": "failed: replaced"}


async def test_the_test_kits_authenticator_is_a_plugin_asked_first(
    main_plugins: None, database_url: str
) -> None:
    from core.testing.principal import PLUGIN_NAME, principal_headers, trust_test_principals

    app = create_app(
        make_settings(database_url, enabled_plugins="alpha"),
        plugin_settings={"alpha": {"trust_test_header": True}},
    )
    trust_test_principals(app)
    assert app.state.kernel.pm.has_plugin(PLUGIN_NAME)
    async with running(app) as client:
        response = await client.get(
            "/api/v1/alpha/whoami",
            headers={**principal_headers("usr_kit", "admin"), "x-test-user": "usr_alpha"},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "usr_kit", "roles": ["admin"]}
