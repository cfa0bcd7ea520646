"""What `COURTYARD_OPENTELEMETRY` adds to FastAPI's own request spans
(docs/operations.md#tracing), set up by the app's lifespan with the setting on, so that
nothing of it is imported otherwise:

- a span for each SQL statement, a child of the request's span, through
  opentelemetry-instrumentation-sqlalchemy (the `telemetry` extra); none for the replica
  monitor's probes, which would make a trace of their own every second;
- no credential in a request span: FastAPI records the query string as `url.query`, hiding
  the values of a few names of its own only (cloud storages' signatures), while the local
  upload storage's links carry `signature=` and an OAuth callback `code=` and `state=`.
  A span processor, added to the global tracer provider, replaces such values with
  `REDACTED` as each span starts, before any exporter sees the span.

The spans go to the global tracer provider: set it up before the app starts (FastAPI does
at startup with `FASTAPI_OTEL_AUTO_CONFIGURE`).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from core.db.engine import Database

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span

logger = logging.getLogger("courtyard.app")
TELEMETRY_EXTRA_HINT = "pip install 'courtyard[telemetry]'"
QUERY_ATTRIBUTE = "url.query"
# Attributes of other instrumentations (OpenTelemetry's ASGI one, older conventions) that
# hold a URL or a target with its query string.
URL_ATTRIBUTES = ("url.full", "http.url", "http.target")
REDACTED = "REDACTED"
# Query parameters whose value is a credential, compared without case: Courtyard's own
# (the local storage's signed links, OAuth callbacks), the usual names of tokens, and the
# signed-URL names of the OpenTelemetry conventions (which FastAPI hides already).
SENSITIVE_QUERY_PARAMETERS = frozenset(
    {
        "signature",
        "code",
        "state",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
    }
)
# The providers given the redacting processor already: a provider cannot drop a processor,
# and apps built one after another in a process (tests, tools) share the global one.
_redacting_providers: weakref.WeakSet[Any] = weakref.WeakSet()


def start_tracing(database: Database) -> Callable[[], None]:
    """Redact credentials from request spans and trace `database`'s statements; returns what
    stops the database tracing, at shutdown. (The redaction stays: it harms nothing, and
    the provider cannot drop it.)"""
    redact_query_credentials()
    return trace_database(database)


def redacted_query(query: str) -> str:
    """`query` with the value of every sensitive parameter replaced with `REDACTED`."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [
            (key, REDACTED if key.lower() in SENSITIVE_QUERY_PARAMETERS else value)
            for key, value in pairs
        ]
    )


def redact_query_credentials() -> None:
    """Give the global tracer provider the processor that redacts `url.query`, once. A
    provider that takes no span processor (not the SDK's, nor one forwarding to it) gets a
    warning: its request spans may carry such credentials."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return  # none set up: no span is recorded
    if provider in _redacting_providers:
        return
    add = getattr(provider, "add_span_processor", None)
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError:
        add = None
    if not callable(add):
        logger.warning(
            "COURTYARD_OPENTELEMETRY is on, but the tracer provider (%s) takes no span "
            "processor: request spans may record credentials sent in query strings "
            "(url.query). Use the OpenTelemetry SDK's provider (%s)",
            type(provider).__name__,
            TELEMETRY_EXTRA_HINT,
        )
        return

    class RedactQueryCredentials(SpanProcessor):
        """Replaces the sensitive values of the query string a starting span records."""

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            attributes = span.attributes or {}
            query = attributes.get(QUERY_ATTRIBUTE)
            if isinstance(query, str) and query:
                span.set_attribute(QUERY_ATTRIBUTE, redacted_query(query))
            for name in URL_ATTRIBUTES:
                url = attributes.get(name)
                if isinstance(url, str) and "?" in url:
                    before, _, query = url.partition("?")
                    span.set_attribute(name, f"{before}?{redacted_query(query)}")

    add(RedactQueryCredentials())
    _redacting_providers.add(provider)


def trace_database(database: Database) -> Callable[[], None]:
    """Trace the statements run on `database`'s engines (the primary's and the replica's),
    and run the replica monitor's probes untraced. Returns what stops both, at shutdown.

    Without the instrumentation installed: a warning naming the extra, and no database
    spans (requests are still traced). When it is on already (`opentelemetry-instrument`
    traces every engine, or another app of this process started first) it is left as it is.
    """
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:
        logger.warning(
            "COURTYARD_OPENTELEMETRY is on, but database spans need the telemetry extra "
            "(%s): requests are traced, their SQL statements are not",
            TELEMETRY_EXTRA_HINT,
        )
        return _nothing
    # The instrumentation wraps `Engine.connect` process-wide, the monitor's own engines'
    # included: their probes, a root `connect` span every second, are kept out.
    monitor = database.replica
    if monitor is not None:
        monitor.probe_context = suppress_instrumentation
    instrumentor = SQLAlchemyInstrumentor()
    uninstrument: Callable[[], None] = _nothing
    if instrumentor.is_instrumented_by_opentelemetry:
        logger.debug("SQLAlchemy is instrumented already; its engines are left as they are")
    else:
        engines = [database.write_engine.sync_engine]
        if database.has_replica:
            engines.append(database.read_engine.sync_engine)
        # Its declared range stops below SQLAlchemy 2.1, whose engine events (all it uses)
        # are those of 2.0: tests/core/test_tracing.py checks the spans on the pinned version.
        instrumentor.instrument(engines=engines, skip_dep_check=True)
        uninstrument = instrumentor.uninstrument

    def stop() -> None:
        uninstrument()
        if monitor is not None:
            monitor.probe_context = contextlib.nullcontext

    return stop


def _nothing() -> None:
    """Nothing to stop."""
