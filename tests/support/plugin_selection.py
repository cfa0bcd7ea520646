"""Which plugins the suite's apps and commands enable: the suite's own, never whatever
else happens to be installed in the environment.

Left unset, COURTYARD_ENABLED_PLUGINS means "every installed plugin", so a third-party
plugin installed beside Courtyard (the example notes plugin, a deployment's own) would
join every app a test builds: its routes in the OpenAPI document, its branch in every
migration, its requirements in every validation. The suite therefore names its plugins:
the built-in ones, plus those of the test distributions a test puts on the path on purpose.
A test that names its own selection (settings, environment) keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path

from core.plugin import ENTRY_POINT_GROUP
from tests.support.distributions import built_in_plugins

ENABLED = "COURTYARD_ENABLED_PLUGINS"


def plugins_in(folders: Iterable[Path | str]) -> set[str]:
    """The names of the plugins that the distributions installed in `folders` register."""
    paths = [str(folder) for folder in folders if str(folder)]
    if not paths:
        return set()
    return {
        entry_point.name
        for dist in importlib_metadata.distributions(path=paths)
        for entry_point in dist.entry_points.select(group=ENTRY_POINT_GROUP)
    }


def suite_plugins(folders: Iterable[Path | str] = ()) -> str:
    """COURTYARD_ENABLED_PLUGINS for the suite: the built-in plugins and those installed in
    `folders` (the test distributions in use), comma-separated."""
    return ",".join(sorted(built_in_plugins() | plugins_in(folders)))
