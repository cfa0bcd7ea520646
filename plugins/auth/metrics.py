"""The auth plugin's Prometheus metrics, returned by its `register_metrics` hook: loaded
only with `COURTYARD_METRICS` on."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily

from plugins.auth.throttle import LoginThrottle

LIMITS = ("account", "ip")


class ThrottleCollector:
    """`courtyard_auth_sign_ins_throttled_total{limit}`: sign-in attempts (logins, the OAuth2
    token form, password changes) this process refused with 429 because the account's or
    the client IP's failed-login limit was reached. Read from the throttle at scrape time."""

    def __init__(self, throttle: LoginThrottle) -> None:
        self.throttle = throttle

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for limit in LIMITS:
            family.add_metric([limit], self.throttle.refused[limit])
        yield family

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "courtyard_auth_sign_ins_throttled",
            "Sign-in attempts refused with 429 by the failed-login throttle, by the limit "
            "reached (account or ip)",
            labels=["limit"],
        )
