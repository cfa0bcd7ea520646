"""`AppSession`: the session every request gets, with work deferred until after commit.

A service queues side effects, typically its events, with `session.after_commit(...)`;
they run once the transaction has committed, so no listener ever sees uncommitted data,
and they are dropped when it rolls back. This also lets one plugin call another's public
API inside its own transaction: the callee queues its events on the caller's session and
they fire when the caller commits.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

logger = logging.getLogger("courtyard.db")

AfterCommit = Callable[[], Awaitable[None] | None]

_PENDING = "courtyard.after_commit"


class AppSession(AsyncSession):
    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback` (sync or async) after the current transaction commits."""
        self.info.setdefault(_PENDING, []).append(callback)

    async def commit(self) -> None:
        await super().commit()
        pending: list[AfterCommit] = self.info.pop(_PENDING, [])
        for callback in pending:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the commit stands: a failing side effect is logged, not raised
                logger.exception("after-commit callback %r failed", callback)

    async def rollback(self) -> None:
        self.info.pop(_PENDING, None)
        await super().rollback()

    async def close(self) -> None:
        self.info.pop(_PENDING, None)
        await super().close()
