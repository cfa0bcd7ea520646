"""`core.validation`: one pass that finds every problem, shared by startup (which raises
the first), `courtyard plugins --check` (which prints them all) and the test kit's
contract check. The plugins are the installed test distributions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.kernel import Kernel
from core.plugin import PluginError, discover
from core.settings import CoreSettings
from core.validation import Problem, validate

BROKEN = ["alpha", "cyclea", "cycleb", "needsinput", "orphan", "prefixclash", "stray"]


def settings(**overrides: str) -> CoreSettings:
    return CoreSettings(env="test", database_url="sqlite+aiosqlite:///./v.db", **overrides)


def test_every_problem_is_found_in_one_pass_each_naming_its_plugin(
    use_dists: Callable[..., None],
) -> None:
    use_dists("main", "broken")
    validation = validate(discover(), settings(), enabled=BROKEN)

    assert [(p.plugin, p.message) for p in validation.problems] == [
        ("orphan", "plugin 'orphan' requires 'missing', which is not installed"),
        ("cyclea", "dependency cycle between plugins: cyclea -> cycleb -> cyclea"),
        ("cycleb", "dependency cycle between plugins: cycleb -> cyclea -> cycleb"),
        (
            "needsinput",
            "plugin 'needsinput' container: declares dependency 'payment_gateway', which the "
            "core does not provide (it provides core_settings, database, hooks, settings, and "
            "what a required plugin publishes as <plugin>_<provider>)",
        ),
        (
            "stray",
            "plugin 'stray' implements hook 'nobody_declares_this', which no enabled plugin "
            "declares (enable the plugin that declares it, or mark the implementation "
            "@hookimpl(optionalhook=True))",
        ),
        ("prefixclash", "plugins 'alpha' and 'prefixclash' both mount routes at /api/v1/alpha"),
    ]
    assert "\n" not in "".join(p.message for p in validation.problems)


def test_startup_raises_the_first_problem_of_the_same_pass(
    use_dists: Callable[..., None],
) -> None:
    use_dists("main", "broken")
    first = validate(discover(), settings(), enabled=BROKEN).problems[0]
    with pytest.raises(PluginError) as caught:
        Kernel.build(settings(enabled_plugins=",".join(BROKEN)))
    assert str(caught.value) == first.message


def test_every_installed_plugin_is_validated_when_none_is_named(
    use_dists: Callable[..., None],
) -> None:
    """`plugins --check`'s mode: disabled plugins too, and messages speak of installed
    plugins, not enabled ones."""
    use_dists("main", "broken")
    validation = validate(discover(), settings(disabled_plugins="stray"))

    assert {"stray", "importfail", "misnamed"} <= {p.plugin for p in validation.problems}
    [stray] = validation.problems_of("stray")
    assert stray.reason == (
        "implements hook 'nobody_declares_this', which no installed plugin declares (install "
        "the plugin that declares it, or mark the implementation @hookimpl(optionalhook=True))"
    )
    assert validation.problems_of("alpha") == validation.problems_of("beta") == []


def test_a_line_naming_the_plugin_already_drops_it_from_the_message() -> None:
    assert Problem("x", "plugin 'x': cannot load 'y'").reason == "cannot load 'y'"
    assert Problem("x", "plugin 'x' requires 'y'").reason == "requires 'y'"
    assert Problem("x", "dependency cycle between plugins: x -> x").reason == (
        "dependency cycle between plugins: x -> x"
    )
    assert Problem(None, "unknown setting").reason == "unknown setting"
