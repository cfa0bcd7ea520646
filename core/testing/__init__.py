"""Courtyard's test kit for plugin authors: the `courtyard` pytest plugin's fixtures (see
`core.testing.pytest_plugin`), throwaway databases, and the plugin contract check."""

from core.testing.conformance import (
    PluginConformanceError,
    assert_plugin_conforms,
    conformance_problems,
)
from core.testing.principal import principal_headers

__all__ = [
    "PluginConformanceError",
    "assert_plugin_conforms",
    "conformance_problems",
    "principal_headers",
]
