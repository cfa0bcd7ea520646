"""Courtyard's core: discovers domain plugins and assembles them into one FastAPI app.

The core knows no domain. Import what a plugin needs from its modules:
`core.plugin.Plugin`, `core.hookspecs.hookimpl`, `core.settings.PluginSettings`,
`core.db`, `core.errors`, `core.identity`.
"""

__version__ = "0.1.0"
