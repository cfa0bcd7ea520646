"""Login throttling, per account and per client IP, in the `limits` library's storage.

Every attempt is counted as it starts, atomically (the storage checks and counts in one
step), so guesses sent in parallel cannot outrun the limit while their passwords are
being checked; a caller over either limit gets 429 with `Retry-After` before its password
is even looked at. A successful login clears its account's count — the owner signing in
wipes an attacker's failures — so in effect the account limit counts failures; the IP
limit counts every attempt (a generous limit: refunding successes there would let an
attacker reset their own count with an account of their own). Each attempt is forgotten
after one window, so someone else's failures lock the owner out for at most that long.
Accounts are keyed by a hash of the email as typed (lower-cased), so the storage —
possibly a shared Redis — never holds addresses, and unknown emails are throttled
exactly like known ones (the limit reveals nothing about which accounts exist).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
from collections import Counter

from limits import RateLimitItem, parse
from limits.errors import StorageError

from core.errors import ServiceUnavailableError, TooManyRequestsError
from plugins.auth.settings import AuthSettings
from plugins.auth.windows import Windows

_NAMESPACE = "courtyard-auth-login"
_MAIL_NAMESPACE = "courtyard-auth-mail"
logger = logging.getLogger("courtyard.auth")


class LoginThrottle:
    def __init__(self, settings: AuthSettings, windows: Windows) -> None:
        self._windows = windows
        self._per_account: RateLimitItem = parse(settings.login_limit_per_account)
        self._per_ip: RateLimitItem = parse(settings.login_limit_per_ip)
        # Attempts refused with 429 by this process, by the limit reached ("account",
        # "ip"): what `/metrics` reports (plugins/auth/metrics.py).
        self.refused: Counter[str] = Counter()

    async def check(self, account: str, ip: str | None) -> None:
        """429 (with Retry-After) when the account or the IP is at its limit already;
        counts nothing. Asked before any other work, so a caller over a limit costs no
        database read (and learns nothing from how long one takes)."""
        await self._count(account, ip, counting=False)

    async def attempt(self, account: str, ip: str | None) -> None:
        """Count an attempt against the account (an email as typed, or a user id) and the
        IP; 429 (with Retry-After) when either is over its limit, in which case the
        password must not be checked."""
        await self._count(account, ip, counting=True)

    async def _count(self, account: str, ip: str | None, *, counting: bool) -> None:
        for limit, key in self._keys(account, ip):
            try:
                if counting:
                    under = await self._windows.hit(limit, _NAMESPACE, key)
                else:
                    under = await self._windows.test(limit, _NAMESPACE, key)
                if under:
                    continue
                retry_after = await self._windows.retry_after(limit, _NAMESPACE, key)
            except StorageError as exc:
                raise _unavailable(exc) from None
            self.refused[key.partition(":")[0]] += 1
            raise TooManyRequestsError(
                "Too many sign-in attempts; try again later",
                code="auth.too_many_attempts",
                retry_after=retry_after,
            )

    async def succeeded(self, account: str) -> None:
        """The account's owner got in: forget the account's attempts."""
        limit, key = self._keys(account, None)[0]
        try:
            await self._windows.clear(limit, _NAMESPACE, key)
        except StorageError as exc:
            raise _unavailable(exc) from None

    def _keys(self, account: str, ip: str | None) -> list[tuple[RateLimitItem, str]]:
        keys = [(self._per_account, f"account:{account_key(account)}")]
        if ip:
            keys.append((self._per_ip, f"ip:{client_network(ip)}"))
        return keys


class ActionLimiter:
    """How often one account may be mailed a reset or verification link. Over the limit a
    request is quietly dropped (it already answered 202): a bound on mail flooding, not an
    error."""

    def __init__(self, settings: AuthSettings, windows: Windows) -> None:
        self._windows = windows
        self._limit: RateLimitItem = parse(settings.mail_limit_per_account)

    async def allow(self, action: str, account: str) -> bool:
        key = f"{action}:{account_key(account)}"
        try:
            return await self._windows.hit(self._limit, _MAIL_NAMESPACE, key)
        except StorageError as exc:
            logger.warning("rate-limit storage unreachable (%s); mail not sent", exc)
            return False


def account_key(account: str) -> str:
    """An account as the storage knows it: a hash of the email as typed, lower-cased."""
    return hashlib.sha256(account.strip().lower().encode("utf-8", "replace")).hexdigest()


@functools.lru_cache(maxsize=4096)
def client_network(ip: str) -> str:
    """What one client controls: an IPv4 address, or an IPv6 /64 (one host is usually
    given a whole /64, so counting single IPv6 addresses would let it take fresh ones).
    Remembered for the last few thousand addresses: parsing one is most of a throttle
    check's Python."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (a test client's name): counted as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _unavailable(exc: StorageError) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"Sign-in is unavailable: the rate-limit storage cannot be reached "
        f"({type(exc.storage_error).__name__})",
        code="auth.rate_limit_unavailable",
    )
