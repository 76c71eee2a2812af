"""One write traced end to end, across the CDC hop, as Zipkin's HTTP API reports it."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import StackSettings
from tests.helpers import eventually, unique_email

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PROJECTIONS = ("graph-projection", "cache-projection", "timeseries-projection")
Span = dict[str, Any]


def _service(span: Span) -> str:
    return str(span.get("localEndpoint", {}).get("serviceName", ""))


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    """The span's parent, grandparent, … as far as the trace holds them."""
    chain = []
    while (parent := by_id.get(span.get("parentId", ""))) is not None:
        chain.append(parent)
        span = parent
    return chain


async def _trace(zipkin: httpx.AsyncClient, trace_id: str) -> list[Span]:
    r = await zipkin.get(f"/api/v2/trace/{trace_id}")
    return r.json() if r.status_code == 200 else []  # type: ignore[no-any-return]


def _complete(spans: list[Span]) -> bool:
    services = {_service(s) for s in spans}
    return {"gateway", "users", *PROJECTIONS} <= services


async def test_a_user_created_through_the_gateway_is_one_trace_to_every_projection(
    stack: StackSettings,
) -> None:
    # Our own traceparent (sampled) names the trace, so the test knows which one to ask for.
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    body = {
        "email": unique_email("traced"),
        "full_name": "Traced Student",
        "password": "pw-" + "x" * 12,
    }
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as gw:
        created = await gw.post("/users", json=body, headers=headers)
    assert created.status_code == 201, created.text

    zipkin_url = f"http://{stack.zipkin_host}:{stack.zipkin_port}"
    async with httpx.AsyncClient(base_url=zipkin_url, timeout=5) as zipkin:
        spans = await eventually(
            lambda: _trace(zipkin, trace_id), until=_complete, timeout=60, interval=1
        )

    by_id = {s["id"]: s for s in spans}
    gateway = [s for s in spans if _service(s) == "gateway" and s.get("kind") == "SERVER"]
    users = [s for s in spans if _service(s) == "users" and s.get("kind") == "SERVER"]
    assert len(gateway) == 1 and len(users) == 1, [(_service(s), s["name"]) for s in spans]
    (gw_span,), (users_span,) = gateway, users
    # The request: the users service's span descends from the gateway's (through its httpx call).
    assert gw_span in _ancestors(users_span, by_id)
    assert gw_span["timestamp"] <= users_span["timestamp"]
    for name in PROJECTIONS:
        applied = [s for s in spans if _service(s) == name]
        assert applied, f"no span from {name}"
        for span in applied:
            # Across PostgreSQL, Debezium and Kafka: a child of the request that wrote the row,
            # starting after it started (and, being asynchronous, usually after it ended).
            assert span["kind"] == "CONSUMER"
            assert span.get("parentId") == users_span["id"], (name, span)
            assert users_span["timestamp"] <= span["timestamp"]
            assert span["tags"]["messaging.destination.name"] == "campus.public.users"


async def test_a_change_made_outside_the_api_starts_its_own_trace(stack: StackSettings) -> None:
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    body = {"email": unique_email("psql"), "full_name": "Before Psql", "password": "pw-" + "x" * 12}
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as gw:
        created = await gw.post("/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    conn = await asyncpg.connect(stack.users_dsn())
    try:
        stamped = await conn.fetchval("SELECT trace_context FROM users WHERE id = $1", user_id)
        assert stamped is not None and trace_id in stamped
        # Like a person at psql: the statement does not mention the column...
        await conn.execute("UPDATE users SET full_name = 'After Psql' WHERE id = $1", user_id)
        # ...and the trigger clears the context the API's write left, so it cannot be reused.
        assert await conn.fetchval("SELECT trace_context FROM users WHERE id = $1", user_id) is None
    finally:
        await conn.close()

    key = f'{{"id":{user_id}}}'
    zipkin_url = f"http://{stack.zipkin_host}:{stack.zipkin_port}"
    params = {
        "serviceName": "graph-projection",
        "annotationQuery": f"messaging.kafka.message.key={key}",
        "lookback": "600000",
        "limit": "50",
    }

    async def applied_traces() -> list[list[Span]]:
        async with httpx.AsyncClient(base_url=zipkin_url, timeout=5) as zipkin:
            r = await zipkin.get("/api/v2/traces", params=params)
        return r.json() if r.status_code == 200 else []  # type: ignore[no-any-return]

    def has_own_trace(traces: list[list[Span]]) -> bool:
        return any(
            t
            and t[0]["traceId"] != trace_id
            and any(_service(s) == "graph-projection" and "parentId" not in s for s in t)
            for t in traces
        )

    traces = await eventually(applied_traces, until=has_own_trace, timeout=60, interval=1)
    # The API's write stays in the request's trace; the psql change is a root of its own.
    assert any(t[0]["traceId"] == trace_id for t in traces)
