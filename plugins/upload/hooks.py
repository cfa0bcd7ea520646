"""The core and `user` hooks the `upload` plugin implements."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from core.hookspecs import ReadinessCheck, hookimpl

if TYPE_CHECKING:
    import typer

logger = logging.getLogger("courtyard.upload")


class UploadHooks:
    def __init__(self, container: Any) -> None:
        self.container = container
        self.settings = container.settings()
        self._purging: asyncio.Task[None] | None = None

    @hookimpl
    async def user_deleted(self, user_id: str) -> None:
        """A deleted user's files go with them: objects first, then records."""
        count = await self.container.service().delete_all_of(user_id)
        if count:
            logger.info("deleted %d uploads of deleted user %s", count, user_id)

    @hookimpl
    def register_commands(self) -> list[typer.Typer]:
        # Imported here: the command line's libraries stay out of the server's start-up.
        from plugins.upload.cli import build_cli

        return [build_cli(self.container)]

    @hookimpl
    def register_readiness_checks(self) -> list[ReadinessCheck]:
        return [ReadinessCheck("storage", self.container.storage().check)]

    @hookimpl
    async def startup(self, app: FastAPI) -> None:
        if self.settings.purge_interval:
            self._purging = asyncio.create_task(
                self._purge_every(self.settings.purge_interval), name="courtyard.upload.purge"
            )

    @hookimpl
    async def shutdown(self, app: FastAPI) -> None:
        if self._purging is not None:
            self._purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
            self._purging = None
        await self.container.storage().close()

    async def _purge_every(self, interval: float) -> None:
        service = self.container.service()
        while True:
            await asyncio.sleep(interval)
            try:
                result = await service.purge()
            except Exception:  # logged; the next round tries again
                logger.exception("purging expired uploads failed")
                continue
            if result.uploads:
                logger.info("purged %d expired uploads (%d bytes)", result.uploads, result.bytes)
