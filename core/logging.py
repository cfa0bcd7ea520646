"""Log records carry the request id of the request being served (`-` outside one)."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("courtyard_request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


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
