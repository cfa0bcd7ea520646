"""What every `courtyard` command gets as `ctx.obj`: the kernel, built on first use."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from core.kernel import Kernel
from core.settings import ConfigurationError

T = TypeVar("T")


class CliContext:
    def __init__(
        self, kernel: Kernel | None = None, error: ConfigurationError | None = None
    ) -> None:
        self._kernel = kernel
        self._error = error

    @property
    def kernel(self) -> Kernel:
        if self._kernel is None:
            if self._error is not None:
                raise self._error
            self._kernel = Kernel.build()
        return self._kernel

    def container(self, plugin: str) -> Any:
        """The container of an enabled plugin, for a plugin's own commands."""
        return self.kernel.container_of(plugin)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` to completion, then close the database connections it opened."""

        async def wrapped() -> T:
            try:
                return await coroutine
            finally:
                await self.kernel.container.database().dispose()

        return asyncio.run(wrapped())
