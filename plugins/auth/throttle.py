"""Failed-login throttling, per account and per client IP, in the `limits` library's storage.

Only failures count. A caller over either limit gets 429 with `Retry-After` before its
password is even checked, so guessing stops; the account's counter forgets each failure
after one window, so someone else's failures cannot lock the owner out for longer than
that. Accounts are keyed by a hash of the email as typed (lower-cased), so the storage —
possibly a shared Redis — never holds addresses, and unknown emails are throttled exactly
like known ones (the limit reveals nothing about which accounts exist).
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from core.errors import ServiceUnavailableError, TooManyRequestsError
from plugins.auth.settings import AuthSettings

_NAMESPACE = "courtyard-auth-login"


def open_storage(url: str) -> Storage:
    """The async storage for `memory://` or `redis[s]://…` (connects on first use)."""
    options = {"implementation": "redispy"} if url.startswith("redis") else {}
    storage = storage_from_string(f"async+{url}", wrap_exceptions=True, **options)
    assert isinstance(storage, Storage)
    return storage


class LoginThrottle:
    def __init__(self, settings: AuthSettings, storage: Storage) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account: RateLimitItem = parse(settings.login_limit_per_account)
        self._per_ip: RateLimitItem = parse(settings.login_limit_per_ip)

    async def check(self, email: str, ip: str | None) -> None:
        """Raise 429 (with Retry-After) when the account or the IP has failed too often."""
        for limit, key in self._keys(email, ip):
            try:
                allowed = await self._limiter.test(limit, _NAMESPACE, key)
                if not allowed:
                    stats = await self._limiter.get_window_stats(limit, _NAMESPACE, key)
            except StorageError as exc:
                raise _unavailable(exc) from None
            if not allowed:
                raise TooManyRequestsError(
                    "Too many failed sign-in attempts; try again later",
                    code="auth.too_many_attempts",
                    retry_after=math.ceil(stats.reset_time - time.time()),
                )

    async def failed(self, email: str, ip: str | None) -> None:
        """Count one failed attempt against the account and the IP."""
        try:
            for limit, key in self._keys(email, ip):
                await self._limiter.hit(limit, _NAMESPACE, key)
        except StorageError as exc:
            raise _unavailable(exc) from None

    def _keys(self, email: str, ip: str | None) -> list[tuple[RateLimitItem, str]]:
        account = hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
        keys = [(self._per_account, f"account:{account}")]
        if ip:
            keys.append((self._per_ip, f"ip:{ip}"))
        return keys


def _unavailable(exc: StorageError) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"Sign-in is unavailable: the rate-limit storage cannot be reached "
        f"({type(exc.storage_error).__name__})",
        code="auth.rate_limit_unavailable",
    )
