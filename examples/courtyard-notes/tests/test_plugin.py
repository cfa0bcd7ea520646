"""The plugin follows Courtyard's plugin contract (the kit's check), on every backend."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from core.testing import assert_plugin_conforms
from core.testing.databases import backends


@pytest.mark.parametrize("backend", backends())
def test_the_plugin_conforms(backend: str) -> None:
    assert_plugin_conforms("notes", backend=backend)


def test_it_is_discovered_through_its_entry_point(courtyard_app: FastAPI) -> None:
    kernel = courtyard_app.state.kernel
    assert kernel.plugin_names == ["user", "notes"]
    assert kernel.installed["notes"].distribution == "courtyard-notes"
    assert kernel.installed["notes"].version == "0.1.0"
