"""How request code finds the app's services: through the root container, and only it.

FastAPI hands a dependency or a route the request, and through it the app: the app is
where the root container must be found. So `app.state` holds one object, the kernel,
which owns the root container (`kernel.container`: settings, the hook relay, the
database, the readiness checks, each plugin's container). Request code asks
`root_container(request)` for what it needs (`core.identity`'s principal does); a
plugin's routes reach their own container, which `build_router` is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import State
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    import pluggy

    from core.container import RootContainer
    from core.db.engine import Database
    from core.kernel import Kernel


@dataclass
class Lifecycle:
    """Where the serving process stands, as the server tells the app (`kernel.lifecycle`).

    `draining`: the server was asked to stop and is draining first (`courtyard serve` on
    SIGTERM, COURTYARD_SHUTDOWN_DRAIN; see core/cli/draining.py): `/health/ready` answers
    503 so that a load balancer takes the instance out of rotation, while every route still
    serves (with `Connection: close`, so that pooled connections are let go). Under any
    other server (plain `uvicorn --factory core.app:create_app`) nothing sets it: no drain.
    A plain flag, because it is set from a signal handler, which runs between two bytecodes
    of the event loop's thread: nothing that takes a lock or wakes a waiter is safe there.
    """

    draining: bool = False


class AppState(State):
    """`app.state`: the kernel, and nothing else is stored.

    `database` and `plugin_manager` are read-only views of it, kept for tests and tools
    that reach into an app (`app.state.database.write_engine`); the app's own code reads
    neither.
    """

    def __init__(self, kernel: Kernel) -> None:
        super().__init__({"kernel": kernel})

    @property
    def database(self) -> Database:
        database: Database = self.kernel.container.database()
        return database

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        pm: pluggy.PluginManager = self.kernel.pm
        return pm

    def __setattr__(self, key: Any, value: Any) -> None:
        if key in ("kernel", "database", "plugin_manager"):
            raise AttributeError(f"app.state.{key} is set once, when the app is built")
        super().__setattr__(key, value)


def root_container(connection: HTTPConnection) -> RootContainer:
    """The root container of the app serving `connection` (a request or a websocket)."""
    container: RootContainer = connection.app.state.kernel.container
    return container
