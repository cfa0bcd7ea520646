"""Who the current request acts for, as the database layer sees it: the principal's user
id, or None (anonymous, a command, a background task).

`core.identity.optional_principal` sets it once the principal is resolved, and the request
middleware (`core.middleware`) starts every request at None. `optional_principal` is an
async dependency: FastAPI runs it in the request's own context, so the endpoint and the
services it calls see what it set. (A sync dependency runs in a worker thread, on a copy
of the context: what it set would be lost as it returns.)

`core.db.read_routing` reads it, with a replica configured: a caller's write is recorded
after its commit, and the caller's later reads wait for the replica to replay it or go to
the primary (read-your-writes). The core depends on no web framework type here, so the
database layer needs nothing of `core.identity`.
"""

from __future__ import annotations

from contextvars import ContextVar

caller_id: ContextVar[str | None] = ContextVar("courtyard_caller_id", default=None)
