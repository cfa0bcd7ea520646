"""Courtyard's logging: every record carries the request id of the request being served
(`-` outside one), and `create_app` sends the lines to stderr in the shape
`COURTYARD_LOG_FORMAT` names (core/log_formatters.py), unless logging is already set up.

`configure_logging` decides by the root logger, the one every logger's records end at:
- it has no handler (uvicorn's own default configuration sets none, nor does `courtyard
  serve`): Courtyard puts its handler there, at `COURTYARD_LOG_LEVEL`, so that its own
  loggers (`courtyard.*`) and every library's reach stderr in one shape. The level is the
  handler's as well as the root logger's: a logger with a level of its own (uvicorn's,
  set by uvicorn's `--log-level`; the database drivers', see below) passes its records
  on whatever the root logger's level, and the handler drops those below the setting. uvicorn's
  loggers, if they still have uvicorn's default handlers, are taken over too: its
  messages go through Courtyard's handler, and its access log is turned off, since
  Courtyard writes one line per request itself (`courtyard.access`).
- it has only Courtyard's handler (an app built before in this process): that handler is
  replaced, so handlers never stack and the newest settings apply.
- it has any other handler (`uvicorn --log-config` that configures the root logger,
  `logging.basicConfig`, a test runner's capture), or the `courtyard` logger has one of
  its own: nothing is changed. The filters here are then for that configuration to use.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

from uvicorn.logging import ColourizedFormatter

from core.log_formatters import LOG_FORMAT as LOG_FORMAT
from core.log_formatters import NO_REQUEST_ID, JsonLineFormatter, TextFormatter

if TYPE_CHECKING:
    from core.settings import CoreSettings

request_id_var: ContextVar[str] = ContextVar("courtyard_request_id", default=NO_REQUEST_ID)


class CourtyardHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs (stderr): told apart from anyone else's."""


class RequestIdFilter(logging.Filter):
    """Gives a record the `request_id` of the request being served (`-` outside one),
    unless it has one already (an access line names its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class TraceIdFilter(logging.Filter):
    """Gives a record logged while an OpenTelemetry span is active that span's `trace_id`
    (32 hex digits), to find the trace of a log line. Made only with
    `COURTYARD_OPENTELEMETRY` on: the OpenTelemetry API is imported then."""

    def __init__(self) -> None:
        super().__init__()
        from opentelemetry import trace

        self._current_span = trace.get_current_span
        self._format_trace_id = trace.format_trace_id

    def filter(self, record: logging.LogRecord) -> bool:
        context = self._current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = self._format_trace_id(context.trace_id)
        return True


def configure_logging(settings: CoreSettings) -> None:
    """Send log records to stderr in `settings.log_format` at `settings.log_level`, unless
    logging is set up by someone else (the rules are in this module's docstring)."""
    root = logging.getLogger()
    if not all(isinstance(handler, CourtyardHandler) for handler in root.handlers):
        return
    if logging.getLogger("courtyard").handlers:
        return
    handler = CourtyardHandler()
    handler.setLevel(settings.log_level)
    handler.setFormatter(JsonLineFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    if settings.opentelemetry:
        handler.addFilter(TraceIdFilter())
    for previous in list(root.handlers):
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    _take_over_uvicorn()


def _take_over_uvicorn() -> None:
    """uvicorn's messages through Courtyard's handler, and no access line of its own, if
    its loggers have only uvicorn's default handlers (those of its default configuration,
    whose formatters are uvicorn's). A `--log-config` with other formatters is kept."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not logger.handlers or not all(
            isinstance(handler.formatter, ColourizedFormatter) for handler in logger.handlers
        ):
            continue
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        # With no handler and no propagation uvicorn writes no access line at all.
        logger.propagate = name != "uvicorn.access"


# Database drivers that log every statement with its parameters at DEBUG.
_STATEMENT_TRACING_DRIVERS = ("aiosqlite", "asyncpg")


def keep_parameters_out_of_logs() -> None:
    """Keep the database drivers' statement traces off whatever the log level, because
    their parameters hold credentials (a password hash, a token's hash). SQL tracing is
    `COURTYARD_DB_ECHO`, an explicit choice. Leaves alone a level someone set on purpose."""
    for name in _STATEMENT_TRACING_DRIVERS:
        driver = logging.getLogger(name)
        if driver.level == logging.NOTSET:
            driver.setLevel(logging.INFO)
