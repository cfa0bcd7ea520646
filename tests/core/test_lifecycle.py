"""Plugins' `startup` and `shutdown` hooks around the app's lifespan.

`alpha` records what its hooks did in its container's `lifecycle` list (served at
GET /api/v1/alpha/lifecycle); `beta`, which requires alpha, records into the same list.
alpha's startup is async and its shutdown sync; beta's are the other way round, so both
kinds are exercised. Either alpha hook can be made to fail through alpha's settings.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from core.app import create_app
from core.settings import ConfigurationError
from tests.conftest import make_settings, running

PLUGINS = "alpha,beta"
LIFECYCLE = "/api/v1/alpha/lifecycle"
ITEMS = "/api/v1/alpha/items"


def lifecycle_of(app: Any) -> list[str]:
    """What the plugins' hooks recorded, read from alpha's container (also after shutdown)."""
    events: list[str] = app.state.kernel.container_of("alpha").lifecycle()
    return events


async def test_plugins_start_in_order_and_stop_in_reverse_order(
    main_plugins: None, app_client: Any
) -> None:
    async with app_client(enabled_plugins=PLUGINS, upgrade=False) as client:
        app = client.app
        response = await client.get(LIFECYCLE)
        assert response.status_code == 200, response.text
        assert response.json() == {"events": ["alpha started", "beta started"]}

    assert lifecycle_of(app) == ["alpha started", "beta started", "beta stopped", "alpha stopped"]


async def test_a_plugin_that_fails_to_start_stops_startup_naming_it(
    main_plugins: None, database_url: str
) -> None:
    app = create_app(
        make_settings(database_url, enabled_plugins=PLUGINS),
        plugin_settings={"alpha": {"fail_startup": True}},
    )
    with pytest.raises(ConfigurationError) as caught:
        async with running(app):
            pytest.fail("the app started although alpha's startup failed")

    assert str(caught.value) == "plugin 'alpha' failed to start: alpha cannot start"
    # beta (after alpha) never started, and alpha, which never started, is not shut down.
    assert lifecycle_of(app) == []


async def test_a_plugin_that_fails_to_stop_does_not_stop_the_others_or_the_database(
    main_plugins: None, app_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="courtyard.app")
    async with app_client(
        enabled_plugins=PLUGINS, plugin_settings={"alpha": {"fail_shutdown": True}}
    ) as client:
        app = client.app
        assert (await client.post(ITEMS, json={"name": "kept"})).status_code == 201
        assert (await client.get(ITEMS)).status_code == 200
        # The requests' connection went back to the pool, which keeps it open...
        assert app.state.database.write_engine.pool.checkedin() >= 1
    # ...until shutdown closes it, although alpha's shutdown raised (leaving did not).

    assert app.state.database.write_engine.pool.checkedin() == 0
    assert app.state.database.read_engine.pool.checkedin() == 0
    # beta is shut down first, unaffected by alpha's failure after it.
    assert lifecycle_of(app) == ["alpha started", "beta started", "beta stopped"]
    messages = [r.getMessage() for r in caplog.records if r.name == "courtyard.app"]
    assert any("plugin 'alpha' failed to stop: alpha cannot stop" in m for m in messages), (
        caplog.text
    )


@pytest.mark.parametrize(
    ("env", "secret", "warned"),
    [
        ("development", None, True),
        ("development", "a-strong-secret-of-at-least-32-bytes!", False),
        ("test", None, False),
    ],
)
async def test_starting_with_the_public_development_secret_warns(
    database_url: str, caplog: pytest.LogCaptureFixture, env: str, secret: str | None, warned: bool
) -> None:
    """Stops a development server that others can reach from trusting tokens anyone can
    sign with the default secret (it is in the source) without saying so."""
    overrides: dict[str, Any] = {"env": env, "enabled_plugins": ""}
    if secret is not None:
        overrides["secret_key"] = secret
    app = create_app(make_settings(database_url, **overrides))
    with caplog.at_level(logging.WARNING, logger="courtyard.app"):
        async with running(app):
            pass

    said = [r.getMessage() for r in caplog.records if r.name == "courtyard.app"]
    assert any("COURTYARD_SECRET_KEY is the public development default" in m for m in said) is (
        warned
    )


async def test_objects_made_at_startup_are_frozen_out_of_the_collector_while_serving(
    database_url: str,
) -> None:
    """A full garbage collection must not walk the app's startup objects on every pass;
    after shutdown they are collectable again (so old apps of one process can be freed)."""
    gc.unfreeze()
    app = create_app(make_settings(database_url))
    async with running(app) as client:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen
        assert (await client.get("/health/live")).status_code == 200
    assert gc.get_freeze_count() == 0
