"""COURTYARD_OPENTELEMETRY: a request makes a server span (FastAPI's own) and, inside its
trace, a span per SQL statement (core/telemetry.py); the credentials a query string can
carry never reach a span, nor do the replica monitor's probes. The spans are read from the
OpenTelemetry SDK's in-memory exporter, set up here on the global tracer provider as an
operator's SDK would be."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from tests.conftest import AppFactory
from tests.plugins.upload.conftest import PNG

PLUGINS = "user,auth,mail"
SIGNUP = "/api/v1/auth/signup"
EMAIL = "traced@example.com"
PASSWORD = "a passphrase nobody guesses"


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    """Every span ended in this process from now on. The global provider can be set once
    per process: an SDK provider already there gets the exporter added instead."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def server_span(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [found] = [span for span in spans if span.kind == SpanKind.SERVER and span.name == name]
    return found


def database_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.kind == SpanKind.CLIENT
        and span.attributes is not None
        and ("db.system" in span.attributes or "db.system.name" in span.attributes)
    ]


async def test_a_request_is_traced_with_its_database_statements(
    exported: InMemorySpanExporter, app_client: AppFactory
) -> None:
    async with app_client(enabled_plugins=PLUGINS, opentelemetry=True) as client:
        exported.clear()
        response = await client.post(
            SIGNUP, json={"email": EMAIL, "password": PASSWORD, "name": "Traced"}
        )
        spans = exported.get_finished_spans()
    assert response.status_code == 201, response.text

    [server] = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == f"POST {SIGNUP}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == SIGNUP
    assert server.attributes["http.response.status_code"] == 201
    in_request = [
        span
        for span in database_spans(spans)
        if span.context is not None
        and server.context is not None
        and span.context.trace_id == server.context.trace_id
    ]
    names = [span.name for span in in_request]
    assert any(name.startswith("INSERT") for name in names), names
    assert any(name.startswith("SELECT") for name in names), names
    # Statements are recorded with placeholders: no value the client sent is in a span.
    recorded = json.dumps([dict(span.attributes or {}) for span in spans], default=str)
    assert EMAIL not in recorded
    assert PASSWORD not in recorded


async def test_database_tracing_ends_with_the_app(
    exported: InMemorySpanExporter, app_client: AppFactory
) -> None:
    async with app_client(enabled_plugins=PLUGINS, opentelemetry=True):
        assert SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry


async def test_nothing_is_traced_with_the_setting_off(
    exported: InMemorySpanExporter, app_client: AppFactory
) -> None:
    """Even with an SDK provider set up in the process: off means no span at all."""
    async with app_client(enabled_plugins=PLUGINS) as client:
        exported.clear()
        response = await client.post(
            SIGNUP, json={"email": EMAIL, "password": PASSWORD, "name": "Untraced"}
        )
        spans = exported.get_finished_spans()
    assert response.status_code == 201, response.text
    assert spans == ()


async def test_no_credential_sent_in_a_query_string_reaches_a_span(
    exported: InMemorySpanExporter, app_client: AppFactory, tmp_path: Path
) -> None:
    """The local upload storage's signed link (`signature=`) and an OAuth callback's `code`
    and `state`: the server span keeps the query's shape, each such value `REDACTED`."""
    settings = {"upload": {"local_root": str(tmp_path / "uploads")}}
    async with app_client(
        enabled_plugins="user,auth,mail,upload", opentelemetry=True, plugin_settings=settings
    ) as client:
        signed_up = await client.post(
            SIGNUP, json={"email": EMAIL, "password": PASSWORD, "name": "Uploader"}
        )
        assert signed_up.status_code == 201, signed_up.text
        me = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
        granted = await client.post(
            "/api/v1/uploads",
            json={"filename": "p.png", "content_type": "image/png", "size": len(PNG)},
            headers=me,
        )
        assert granted.status_code == 201, granted.text
        link = granted.json()["url"]
        exported.clear()
        sent = await client.put(link, content=PNG, headers=granted.json()["headers"])
        callback = await client.get(
            "/api/v1/oauth/example/callback",
            params={"code": "the-code-4711", "state": "the-state-0815", "Signature": "s-9"},
        )
        spans = exported.get_finished_spans()
    assert sent.status_code == 204, sent.text
    assert callback.status_code == 404  # no oauth plugin here: the span is made all the same

    expires = parse_qs(urlsplit(link).query)["expires"][0]
    signature = parse_qs(urlsplit(link).query)["signature"][0]
    upload = server_span(spans, "PUT /api/v1/uploads/{upload_id}/content")
    assert upload.attributes is not None
    assert upload.attributes["url.query"] == f"expires={expires}&signature=REDACTED"
    [unmatched] = [
        span
        for span in spans
        if span.kind == SpanKind.SERVER and span.attributes is not None
        and span.attributes.get("url.path") == "/api/v1/oauth/example/callback"
    ]  # fmt: skip
    assert unmatched.attributes is not None
    assert unmatched.attributes["url.query"] == "code=REDACTED&state=REDACTED&Signature=REDACTED"
    recorded = json.dumps([dict(span.attributes or {}) for span in spans], default=str)
    for secret in (signature, "the-code-4711", "the-state-0815", "s-9"):
        assert secret not in recorded


async def test_the_replica_monitors_probes_make_no_spans(
    exported: InMemorySpanExporter, app_client: AppFactory, tmp_path: Path
) -> None:
    """The monitor checks the replica every second on engines of its own: with tracing on,
    those checks are no trace of their own, while the app's reads on the replica are."""
    replica = f"sqlite+aiosqlite:///{tmp_path / 'replica.db'}"
    async with app_client(
        enabled_plugins=PLUGINS, opentelemetry=True, read_database_url=replica
    ) as client:
        monitor = client.app.state.database.replica  # type: ignore[attr-defined]
        assert monitor is not None
        exported.clear()
        for _ in range(3):
            await monitor.check()
        after_checks = exported.get_finished_spans()
        replica_engine = client.app.state.database.read_engine  # type: ignore[attr-defined]
        async with replica_engine.connect() as connection:
            await connection.execute(select(1))
        after_a_read = exported.get_finished_spans()
    assert monitor.checked
    assert after_checks == ()
    assert database_spans(after_a_read), [span.name for span in after_a_read]
