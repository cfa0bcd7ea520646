"""Assertions on RFC 9457 problem responses, shared by the core's tests."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import httpx

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance", "request_id"}
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # use fullmatch


def assert_problem(
    response: httpx.Response, status: int, code: str, *, instance: str | None = None
) -> dict[str, Any]:
    """Check `response` is a complete problem+json for `status`/`code`; return its body."""
    assert response.status_code == status, response.text
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["type"] == "about:blank"
    assert body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status
    assert body["code"] == code, body
    assert isinstance(body["detail"], str), body
    assert body["detail"].strip(), body
    sent = response.request.url.raw_path.partition(b"?")[0].decode("ascii")  # as sent
    assert body["instance"] == (instance if instance is not None else sent)
    request_id = response.headers.get("x-request-id")
    assert request_id is not None, response.headers
    assert SANE_REQUEST_ID.fullmatch(request_id), request_id
    assert body["request_id"] == request_id
    return body
