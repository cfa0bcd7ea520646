"""The `mail` plugin as the core sees it: registration, no routes, no readiness check,
and `auth` requiring it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.kernel import Kernel
from core.plugin import PluginError, discover
from tests.conftest import make_settings
from tests.plugins.mail.conftest import MailAppFactory


def test_registered_through_the_projects_entry_point() -> None:
    [mail] = [p for p in discover() if p.name == "mail"]
    assert mail.distribution == "courtyard"
    assert mail.entry_point.value == "plugins.mail:plugin"
    plugin = mail.load()
    assert plugin.requires == ()
    assert (plugin.router, plugin.models, plugin.migrations) == (None, None, None)
    assert plugin.hookspecs == "hookspecs"


async def test_it_adds_no_route_no_tag_and_no_readiness_check(mail_app: MailAppFactory) -> None:
    """Mail is sent after the response: a mail server that is down must not take the
    instance out of the load balancer."""
    async with mail_app() as app:
        document = (await app.client.get("/openapi.json")).json()
        ready = await app.client.get("/health/ready")

    assert not [p for p in document["paths"] if "mail" in p]
    assert "mail" not in {tag["name"] for tag in document.get("tags", [])}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


@pytest.mark.parametrize("plugins", ["user,auth", "user,auth,oauth"])
def test_auth_without_mail_stops_startup_naming_the_requirement(
    tmp_path: Path, plugins: str
) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", enabled_plugins=plugins)

    with pytest.raises(PluginError, match="plugin 'auth' requires 'mail', which is disabled"):
        Kernel.build(settings)


def test_auth_gets_the_mailer_of_the_mail_plugin(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", enabled_plugins="user,auth,mail"
    )
    kernel = Kernel.build(settings)

    assert kernel.container_of("auth").mail_mailer() is kernel.container_of("mail").mailer()
    assert kernel.plugin_names.index("mail") < kernel.plugin_names.index("auth")
