"""`courtyard-observers`: test plugins implementing `register_middleware` and
`register_metrics`, right and wrong. A real distribution, written here and pip-installed
into a folder of its own, then found through its entry points like any other (as
tests/core/test_register_hooks.py does for its faulty plugins).

- `earlystamp`, `latestamp`: each adds a `Stamp` middleware, which answers with the header
  `X-Stamp-<plugin>: <its position among the stamps> <the request id it saw>` and raises
  when the request's `X-Explode` names it.
- `taskstamp` adds a Starlette `BaseHTTPMiddleware` (which runs the rest of the request in
  a task of its own), answering with `X-Task-Stamp: seen`.
- `badmiddleware` returns a dict, `badargs` a Middleware its class cannot take.
- `counting` returns a prometheus_client Counter it counted 3 on; `badmetrics` returns an
  int; `clashing` a counter named like the core's request counter; `brokenmetrics` a
  collector whose collect() raises a RuntimeError with a two-line message.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "courtyard-observers"
version = "0.0.1"
requires-python = ">=3.11"

[project.entry-points."courtyard.plugins"]
earlystamp = "courtyard_observers.earlystamp:plugin"
latestamp = "courtyard_observers.latestamp:plugin"
taskstamp = "courtyard_observers.taskstamp:plugin"
badmiddleware = "courtyard_observers.badmiddleware:plugin"
badargs = "courtyard_observers.badargs:plugin"
counting = "courtyard_observers.counting:plugin"
badmetrics = "courtyard_observers.badmetrics:plugin"
clashing = "courtyard_observers.clashing:plugin"
brokenmetrics = "courtyard_observers.brokenmetrics:plugin"

[tool.setuptools.packages.find]
include = ["courtyard_observers*"]
"""

MODULES = {
    "__init__": "",
    "stamp": """
        from starlette.datastructures import MutableHeaders


        class Stamp:
            def __init__(self, app, *, name):
                self.app = app
                self.name = name

            async def __call__(self, scope, receive, send):
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                state = scope.setdefault("state", {})
                stamps = state.setdefault("stamps", [])
                stamps.append(self.name)
                stamp = f"{len(stamps)} {state.get('request_id', 'none')}"
                if dict(scope["headers"]).get(b"x-explode") == self.name.encode():
                    raise RuntimeError(f"{self.name} exploded")

                async def stamped(message):
                    if message["type"] == "http.response.start":
                        MutableHeaders(scope=message).append(f"X-Stamp-{self.name}", stamp)
                    await send(message)

                await self.app(scope, receive, stamped)
        """,
    "earlystamp": """
        from starlette.middleware import Middleware

        from core.hookspecs import hookimpl
        from core.plugin import Plugin
        from courtyard_observers.stamp import Stamp

        plugin = Plugin(name="earlystamp", package="courtyard_observers", hooks="earlystamp")


        @hookimpl
        def register_middleware():
            return [Middleware(Stamp, name="earlystamp")]
        """,
    "latestamp": """
        from starlette.middleware import Middleware

        from core.hookspecs import hookimpl
        from core.plugin import Plugin
        from courtyard_observers.stamp import Stamp

        plugin = Plugin(name="latestamp", package="courtyard_observers", hooks="latestamp")


        @hookimpl
        def register_middleware():
            return [Middleware(Stamp, name="latestamp")]
        """,
    "taskstamp": """
        from starlette.middleware import Middleware
        from starlette.middleware.base import BaseHTTPMiddleware

        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="taskstamp", package="courtyard_observers", hooks="taskstamp")


        class TaskStamp(BaseHTTPMiddleware):
            async def dispatch(self, request, call_next):
                response = await call_next(request)
                response.headers["X-Task-Stamp"] = "seen"
                return response


        @hookimpl
        def register_middleware():
            return [Middleware(TaskStamp)]
        """,
    "badmiddleware": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="badmiddleware", package="courtyard_observers", hooks="badmiddleware")


        @hookimpl
        def register_middleware():
            return [{"cls": "Stamp"}]
        """,
    "badargs": """
        from starlette.middleware import Middleware

        from core.hookspecs import hookimpl
        from core.plugin import Plugin
        from courtyard_observers.stamp import Stamp

        plugin = Plugin(name="badargs", package="courtyard_observers", hooks="badargs")


        @hookimpl
        def register_middleware():
            return [Middleware(Stamp, "badargs")]
        """,
    "counting": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="counting", package="courtyard_observers", hooks="counting")


        @hookimpl
        def register_metrics():
            from prometheus_client import Counter

            things = Counter("courtyard_counting_things", "Things counted", registry=None)
            things.inc(3)
            return [things]
        """,
    "badmetrics": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="badmetrics", package="courtyard_observers", hooks="badmetrics")


        @hookimpl
        def register_metrics():
            return [42]
        """,
    "clashing": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="clashing", package="courtyard_observers", hooks="clashing")


        @hookimpl
        def register_metrics():
            from prometheus_client import Counter

            return [Counter("courtyard_http_requests", "Mine", registry=None)]
        """,
    "brokenmetrics": """
        from core.hookspecs import hookimpl
        from core.plugin import Plugin

        plugin = Plugin(name="brokenmetrics", package="courtyard_observers", hooks="brokenmetrics")


        class Unreadable:
            def collect(self):
                raise RuntimeError("the sensor is away\\nsince noon")


        @hookimpl
        def register_metrics():
            return [Unreadable()]
        """,
}


def install_observers(root: Path) -> Path:
    """pip-install `courtyard-observers` under `root` (no index, no build isolation); the
    folder to put on sys.path."""
    project = root / "courtyard-observers"
    package = project / "courtyard_observers"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    for name, source in MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "--target", str(site), str(project)],
        check=True, capture_output=True,
    )  # fmt: skip
    return site
