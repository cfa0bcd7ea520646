"""Who the current request acts for, as the database layer sees it: the principal's user
id, or None (anonymous, a command, the app's own tasks started outside a request).

`core.identity.optional_principal` sets it once the principal is resolved; a sign-in
names the user it signs in with `act_for` (the request came without a principal, and the
new user's next reads must see what was written for them); and the request
middleware (`core.middleware`) starts every request at None and puts back what was there
before as the request ends. `optional_principal` is an async dependency: FastAPI runs it
in the request's own context, so the endpoint and the services it calls see what it set.
(A sync dependency runs in a worker thread, on a copy of the context: what it set would be
lost as it returns.)

Both also record the id in the request's `scope["state"]` (`user_id`), for the access
line: a context variable set in the route does not reach the request middleware when a
plugin's middleware runs the rest of the request in a task of its own (Starlette's
`BaseHTTPMiddleware` does), while the state is one dict, shared by every task of the
request. The request middleware hands that dict over through `request_state`.

`core.db.read_routing` reads it, with a replica configured: a caller's write is recorded
after its commit, and the caller's later reads wait for the replica to replay it or go to
the primary (read-your-writes). The core depends on no web framework type here, so the
database layer needs nothing of `core.identity`.

Work a request starts inherits its caller: a Starlette `BackgroundTasks` task runs after
the response inside the request's own call (before the middleware resets it), and an
`asyncio` task started during the request copies the request's context. That is
harmless, and kept: such a task's reads route by the caller's mark (at worst one more
read on the primary, and what the caller would see anyway), and its writes record a mark
for the caller (whose later reads then wait for those writes too: work done on the
caller's behalf).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

CALLER_STATE_KEY = "user_id"  # in the request's `scope["state"]`

caller_id: ContextVar[str | None] = ContextVar("courtyard_caller_id", default=None)
# The `scope["state"]` of the request being served (None outside one).
request_state: ContextVar[dict[str, Any] | None] = ContextVar(
    "courtyard_request_state", default=None
)


def set_caller(user_id: str | None) -> None:
    """The work in progress acts for `user_id` (None: anonymous) until the request ends,
    and the request's state says so."""
    caller_id.set(user_id)
    state = request_state.get()
    if state is None:
        return
    if user_id is None:
        state.pop(CALLER_STATE_KEY, None)
    else:
        state[CALLER_STATE_KEY] = user_id


def act_for(user_id: str) -> None:
    """From now until the request ends, the work in progress acts for `user_id`: for a
    sign-up or sign-in, whose user is known only once the account is, so that what the
    transaction writes is recorded as that user's (read-your-writes)."""
    set_caller(user_id)
