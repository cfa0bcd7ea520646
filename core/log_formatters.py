"""The two shapes of a Courtyard log line (`COURTYARD_LOG_FORMAT`): `text` and `json`.

Either way one record is one line, so that a log collector that splits on newlines never
cuts a traceback into records of its own, and a newline smuggled into a logged value (a
percent-encoded `%0A` in a path) cannot forge a line:

- `text`: `LOG_FORMAT`, then the record's own fields (`extra=`, such as an access line's
  `method`, `path`, `status`) as `key=value`, then the traceback if any; every line break
  or other control character is escaped (`\\n`, `\\x1b`).
- `json`: one JSON object (python-json-logger): `timestamp` (ISO 8601, UTC), `level`,
  `logger`, `message`, `request_id` (inside a request), the record's own fields, and
  `exc_info` holding the traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, LogData
from pythonjsonlogger.json import JsonFormatter

# A text line's start; `request_id` is set on every record by `core.logging.RequestIdFilter`.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"
NO_REQUEST_ID = "-"  # the request id of a record logged outside a request

# What a record carries besides the fields given with `extra=`: the standard attributes,
# the request id (already placed by LOG_FORMAT) and the coloured copy of the message
# uvicorn adds to its own records.
_NOT_FIELDS = frozenset((*RESERVED_ATTRS, "taskName", "request_id", "color_message"))

# Every character a log viewer could take for the end of a line, or a terminal for a
# command, written as Python writes it in a string literal (`\n`, `\r`, `\x1b`, `\u2028`).
_ESCAPES = str.maketrans(
    {code: repr(chr(code))[1:-1] for code in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)}
)


def one_line(text: str) -> str:
    """`text` with its line breaks and other control characters escaped."""
    return text.translate(_ESCAPES)


def _field_value(value: Any) -> str:
    """A `key=value` value: quoted (JSON string rules) when empty or holding a space, a
    quote or `=`, so that the line still splits into its fields."""
    text = "-" if value is None else str(value)
    if text and not any(char in text for char in ' "='):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`COURTYARD_LOG_FORMAT=text`, e.g. `2026-05-04 10:11:12,345 INFO courtyard.access
    [request_id=3f2a…] request method=GET path=/health/live status=200 duration_ms=0.41`."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        parts = [self.formatMessage(record)]
        parts += [
            f"{key}={_field_value(value)}"
            for key, value in record.__dict__.items()
            if key not in _NOT_FIELDS
        ]
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return one_line(line)


class JsonLineFormatter(JsonFormatter):
    """`COURTYARD_LOG_FORMAT=json`: e.g. `{"timestamp": "2026-05-04T10:11:12.345678+00:00",
    "level": "INFO", "logger": "courtyard.access", "message": "request", "request_id": …,
    "method": "GET", "path": "/health/live", "status": 200, "duration_ms": 0.41}`."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "taskName", "color_message"],
            timestamp=True,
        )

    def process_log_record(self, log_data: LogData) -> LogData:
        """The timestamp first, and no `request_id` outside a request."""
        if log_data.get("request_id") == NO_REQUEST_ID:
            del log_data["request_id"]
        return {"timestamp": log_data.pop("timestamp"), **log_data}
