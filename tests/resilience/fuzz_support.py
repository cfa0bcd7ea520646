"""What the API fuzz (test_fuzz.py) runs with: the schemathesis configuration, the check
that every error is a problem document, and the bearer token of a signed-up account."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi as schemathesis_asgi

PASSWORD = "correct horse battery staple"
SIGNUP = "/api/v1/auth/signup"
PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance", "request_id"}
CODE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*")

# Every check schemathesis has stays on (no 5xx, documented status codes, content types,
# headers and bodies, negative data refused, allowed methods, authentication enforced...).
# `positive_data_acceptance` expects a schema-valid request to succeed; the statuses added
# per operation below are the documented refusals the schema cannot foresee:
# - 422 where the service applies a rule JSON Schema cannot state: the deployment's
#   configured limits, password strength (zxcvbn), email validity (email-validator), a
#   display name that is blank once trimmed or holds control/format characters, a
#   filename that cleans to nothing;
# - 400 for a mailed token the fuzzer cannot know;
# - 413/415 for a size or type the deployment does not accept.
CONFIG = """
seed = 20240601

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-name = [
  "POST /api/v1/auth/signup",
  "POST /api/v1/auth/password",
  "PATCH /api/v1/users/me",
  "POST /api/v1/users",
  "PATCH /api/v1/users/{user_id}",
]
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"
]

[[operations]]
include-name = ["POST /api/v1/auth/password-reset/confirm", "POST /api/v1/auth/verify/confirm"]
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"
]

[[operations]]
include-name = "POST /api/v1/uploads"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "401", "403", "404", "409", "413", "415", "422", "429", "5xx"
]
"""


def fuzz_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_str(CONFIG)


def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every response carries `X-Request-ID`; every error is an RFC 9457 problem document
    with the project's fields, its `status` the response's, `instance` the request's path
    and `request_id` the header's."""
    request_id = (response.headers.get("x-request-id") or [None])[0]
    assert request_id, f"{response.status_code} without an X-Request-ID header"
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM_JSON}"
    )
    body = response.json()
    assert isinstance(body, dict), f"problem body is not an object: {body!r}"
    missing = PROBLEM_FIELDS - body.keys()
    assert not missing, f"problem without {sorted(missing)}: {body!r}"
    assert body["status"] == response.status_code, body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    assert isinstance(body["code"], str), body
    assert CODE.fullmatch(body["code"]), body
    # `instance` is the path as sent (the raw path, not percent-decoded).
    assert body["instance"] == urlsplit(str(response.request.url)).path, body
    assert body["request_id"] == request_id, body
    if response.status_code == 422:
        assert isinstance(body.get("errors"), list), body
        assert body["errors"], body
    return None


def sign_up(schema: Any) -> dict[str, Any]:
    """A new account, signed in: the body `POST /auth/signup` answers."""
    case = schema[SIGNUP]["POST"].Case(
        body={
            "email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
            "password": PASSWORD,
            "name": "Fuzz",
        },
        media_type="application/json",
    )
    response = case.call()
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


class Account:
    """The signed-up account generated requests act as. When its session ends (the fuzzer
    signed it out, revoked its session, changed its password or deleted it: a 401 to a
    request that carried its token), the next request signs up a new one."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.token: str | None = None
        self.signups = 0

    def authorization(self) -> str:
        if self.token is None:
            self.token = sign_up(self.schema)["access_token"]
            self.signups += 1
        return f"Bearer {self.token}"

    def observe(self, case: Any, response: Any) -> None:
        sent = response.request.headers.get("authorization")
        if response.status_code == 401 and self.token and sent == f"Bearer {self.token}":
            self.token = None


def bearer_auth(schema: Any) -> Account:
    """Authenticate every generated request (but those where schemathesis leaves the
    credentials out on purpose) as a signed-up account."""
    account = Account(schema)

    @schema.auth(refresh_interval=None)
    class Bearer:
        def get(self, case: Any, ctx: Any) -> str:
            return account.authorization()

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = case.headers or {}
            case.headers["Authorization"] = data

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        account.observe(case, response)

    return account


def send_granted_bytes(case: Any, response: Any) -> None:
    """After a granted upload (`POST /uploads` → 201, a signed PUT) of at most 64 KiB, send
    that many bytes (text) with the declared type, as a client would: `complete` can then
    succeed (or find the bytes are not of that type, an image say: 409)."""
    if case.operation.label != "POST /api/v1/uploads" or response.status_code != 201:
        return
    grant = response.json()
    size = grant["upload"]["size"]
    if grant["method"] != "PUT" or size > 64 * 1024:
        return
    with schemathesis_asgi.get_client(case.operation.app) as client:
        sent = client.put(grant["url"], data=b"a" * size, headers=grant["headers"])
    assert sent.status_code == 204, sent.text


def follow(schema: Any, case: Any, response: Any, link: str, **extra: Any) -> Any:
    """The request the document's link `link` (of the response `response` answered to
    `case`) describes: its target operation, with the parameters its runtime expressions
    (`$response.body#/...`) name filled in from `response`."""
    operation = case.operation.definition.raw
    links = operation["responses"][str(response.status_code)].get("links", {})
    assert link in links, f"{case.operation.label} {response.status_code} has no link {link!r}"
    definition = links[link]
    pointer, method = definition["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
    path = pointer.replace("~1", "/").replace("~0", "~")
    parameters: dict[str, dict[str, Any]] = {}
    for name, expression in definition.get("parameters", {}).items():
        location, _, key = name.partition(".")
        assert expression.startswith("$response.body#/"), expression
        value: Any = response.json()
        for part in expression.removeprefix("$response.body#/").split("/"):
            value = value[part]
        parameters.setdefault(location, {})[key] = value
    return schema[path][method.upper()].Case(
        path_parameters=parameters.get("path"), query=parameters.get("query"), **extra
    )


__all__ = [
    "Account",
    "bearer_auth",
    "follow",
    "fuzz_config",
    "problem_details",
    "send_granted_bytes",
    "sign_up",
]
