"""Forwarded headers (`X-Forwarded-For`, `X-Forwarded-Proto`): honoured only from the
peers listed in `COURTYARD_FORWARDED_ALLOW_IPS`, by the app itself, whatever server runs it.

`create_app` adds two middlewares, each a no-op unless its case applies:

- `apply_forwarded_headers`, the outermost middleware, when the list is non-empty: uvicorn's
  own `ProxyHeadersMiddleware`, given the list, settles the client address and scheme before
  anything else (request logging, rate limits through `request.client`) reads them. A
  header from any other peer is ignored.
- `refuse_untrusted_forwarded`, inside the request-context middleware (so its problem
  carries a request id) and outside the plugins' middleware (which never sees a refused
  request), when the list is empty (trust nobody): a server can apply forwarded
  headers before the app is called (plain `uvicorn` trusts 127.0.0.1 by default), and the
  peer it replaced cannot be recovered. What gives that away is the client address being
  one of the request's own `X-Forwarded-For` entries: only such a step puts it there (a
  peer never needs to name itself). Such a request is refused with 400
  `core.untrusted_forwarded_header` rather than served with an address the client chose.

`courtyard serve` turns uvicorn's proxy headers off; plain uvicorn needs
`--no-proxy-headers` (docs/deploy.md). With a non-empty list the app trusts a server that
already applied the headers: it must then trust no other peers than the list does.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from core.errors import send_problem

UNTRUSTED_FORWARDED_CODE = "core.untrusted_forwarded_header"
UNTRUSTED_FORWARDED_DETAIL = (
    "The server took the client address from X-Forwarded-For, which "
    "COURTYARD_FORWARDED_ALLOW_IPS does not trust. Serve with `courtyard serve` or "
    "uvicorn's --no-proxy-headers, or list the proxy in COURTYARD_FORWARDED_ALLOW_IPS."
)

logger = logging.getLogger("courtyard.request")
_warned = False


def apply_forwarded_headers(app: ASGIApp, *, allow_ips: Sequence[str]) -> ASGIApp:
    """Honour `X-Forwarded-For` / `X-Forwarded-Proto` from the peers in `allow_ips` (IP
    addresses, CIDR networks, or `*` alone for every peer); with none, `app` unchanged."""
    if not allow_ips:
        return app
    # uvicorn types ASGI apps more narrowly than Starlette; the protocol is the same.
    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=list(allow_ips)))


def refuse_untrusted_forwarded(app: ASGIApp, *, allow_ips: Sequence[str]) -> ASGIApp:
    """With no trusted peer, refuse a request whose client address the server took from
    `X-Forwarded-For`; with trusted peers, `app` unchanged."""
    return app if allow_ips else _RefuseUntrustedForwarded(app)


class _RefuseUntrustedForwarded:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _client_was_forwarded(scope):
            _warn_once(scope)
            if scope["type"] == "http":
                await send_problem(
                    scope, send, 400, UNTRUSTED_FORWARDED_DETAIL, code=UNTRUSTED_FORWARDED_CODE
                )
            else:  # closed before the handshake: the server answers 403
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def _client_was_forwarded(scope: Scope) -> bool:
    """True when the client address is one of the request's `X-Forwarded-For` entries, as
    written or as an address read from it (a server keeps an entry it cannot read, such as
    `6.6.6.6:abc`, verbatim as the client: a fresh string per request would otherwise be a
    fresh rate-limit bucket)."""
    forwarded = [value for key, value in scope["headers"] if key == b"x-forwarded-for"]
    client = scope.get("client")
    if not forwarded or not client:
        return False
    host = str(client[0])
    seen = {host, _comparable(host)}
    for value in forwarded:
        for entry in value.decode("latin-1").split(","):
            written = entry.strip()
            if written in seen or _comparable(_host_of(written)) in seen:
                return True
    return False


def _host_of(entry: str) -> str:
    """The host of a forwarded entry: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1`."""
    if entry.startswith("["):
        return entry[1:].partition("]")[0]
    if entry.count(":") == 1:
        return entry.partition(":")[0]
    return entry


def _comparable(host: str) -> str:
    """One spelling per address (IPv6 has many); anything else as given."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _warn_once(scope: Scope) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    logger.warning(
        "refused %s %r: the server took the client address from X-Forwarded-For, which "
        "COURTYARD_FORWARDED_ALLOW_IPS does not trust (empty: trust nobody). Serve with "
        "`courtyard serve` or `uvicorn --no-proxy-headers`, or list the proxy in "
        "COURTYARD_FORWARDED_ALLOW_IPS. Every such request gets 400 %s; logged once.",
        scope.get("method", "WEBSOCKET"),
        scope.get("path"),
        UNTRUSTED_FORWARDED_CODE,
    )
