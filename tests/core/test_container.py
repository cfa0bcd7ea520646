"""The root container composes plugin containers by name; tests override providers."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from core.kernel import Kernel
from core.plugin import discover
from core.settings import ConfigurationError, CoreSettings
from core.validation import validate
from tests.conftest import make_settings, running


def test_unfilled_plugin_input_stops_startup(use_dists, tmp_path):
    use_dists("broken")
    settings = CoreSettings(env="test", enabled_plugins="needsinput")
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(settings)
    message = str(caught.value)
    assert "plugin 'needsinput' container" in message
    assert "payment_gateway" in message
    assert "\n" not in message


def test_plugin_gets_its_settings_hooks_and_the_providers_it_requires(main_plugins):
    kernel = Kernel.build(CoreSettings(env="test", enabled_plugins="alpha,beta"))
    alpha = kernel.container_of("alpha")
    beta = kernel.container_of("beta")
    assert alpha.settings() is kernel.plugin_settings["alpha"]
    assert alpha.hooks() is kernel.pm.hook
    # beta declares `alpha_lifecycle = providers.Dependency()`: alpha's `lifecycle`, only.
    assert beta.alpha_lifecycle() is alpha.lifecycle()
    assert "alpha" not in beta.providers


def test_a_container_asking_for_a_whole_plugin_container_is_refused(use_dists, tmp_path):
    use_dists("broken")
    settings = CoreSettings(env="test", enabled_plugins="user,wantsall")
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(settings)
    message = str(caught.value)
    assert message.startswith("plugin 'wantsall' container: declares all of plugin 'user'")
    assert "user_service = providers.Dependency()" in message
    assert "\n" not in message


def test_each_app_has_its_own_container_and_plugin_manager(main_plugins):
    first = Kernel.build(CoreSettings(env="test", enabled_plugins="alpha"))
    second = Kernel.build(CoreSettings(env="test", enabled_plugins="alpha"))
    assert first.pm is not second.pm
    assert first.container.database() is not second.container.database()


async def test_tests_override_a_plugin_provider_instead_of_patching(main_plugins, database_url):
    from core.app import create_app

    app = create_app(make_settings(database_url, enabled_plugins="alpha"))
    alpha = app.state.kernel.container_of("alpha")
    settings_cls = type(alpha.settings())
    async with running(app) as client:
        assert (await client.get("/api/v1/alpha/greeting")).json() == {"greeting": "hello"}
        with alpha.settings.override(providers.Object(settings_cls(greeting="overridden"))):
            response = await client.get("/api/v1/alpha/greeting")
        assert response.json() == {"greeting": "overridden"}
        assert (await client.get("/api/v1/alpha/greeting")).json() == {"greeting": "hello"}


def test_a_wrong_reference_in_a_descriptor_is_one_line_naming_the_plugin(use_dists):
    from core.app import create_app

    use_dists("broken")
    with pytest.raises(ConfigurationError) as caught:
        create_app(CoreSettings(env="test", enabled_plugins="badref"))
    message = str(caught.value)
    assert message.startswith("plugin 'badref': cannot load 'routr:build_router'")
    assert "ModuleNotFoundError" in message
    assert "\n" not in message


def test_only_what_a_plugin_publishes_can_be_taken_and_only_from_a_required_plugin(
    use_dists,
):
    """Stops a plugin reaching a required plugin's private providers (user's service) or
    a plugin it does not require (mail's mailer) through the container inputs."""
    use_dists("broken")
    installed = discover()
    settings = CoreSettings(env="test", enabled_plugins="user,wantsprivate")
    problems = [str(p.message) for p in validate(installed, settings).problems_of("wantsprivate")]
    assert problems == [
        "plugin 'wantsprivate' container: declares dependency 'mail_mailer', a provider of "
        "plugin 'mail', which it does not require (add 'mail' to requires)",
        "plugin 'wantsprivate' container: declares dependency 'user_service', which plugin "
        "'user' does not publish (it publishes: accounts, directory)",
    ]
    with pytest.raises(ConfigurationError) as caught:
        Kernel.build(settings)
    assert str(caught.value) == problems[0]
