"""Forwarding rules: retries only for idempotent methods, clear errors, 4xx passed through.
The services are stood in for by httpx.MockTransport; the forwarding code is the real one."""

from __future__ import annotations

import httpx
import jwt
import pytest
from pydantic import SecretStr

from campus_gateway.auth import Principal
from campus_gateway.config import Settings
from campus_gateway.upstream import Upstream, UpstreamError, forwarded_headers

pytestmark = pytest.mark.unit


def upstream(handler: httpx.MockTransport) -> Upstream:
    settings = Settings(
        redis_password=SecretStr("x"),
        jwt_secret=SecretStr("y" * 32),
        admin_email="admin@x.edu",
        admin_password=SecretStr("z" * 12),
        upstream_retries=2,
    )
    return Upstream(settings, transport=handler)


def flaky(fail_times: int, calls: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= fail_times:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle)


async def test_idempotent_requests_are_retried_on_connection_errors() -> None:
    calls: list[str] = []
    up = upstream(flaky(2, calls))
    reply = await up.call("users", "GET", "/users/1")
    assert reply.json() == {"ok": True}
    assert calls == ["GET", "GET", "GET"]
    await up.aclose()


async def test_posts_are_not_retried_and_name_the_service() -> None:
    calls: list[str] = []
    up = upstream(flaky(1, calls))
    with pytest.raises(UpstreamError) as err:
        await up.call("graph", "POST", "/follow", json={})
    assert calls == ["POST"]
    assert err.value.status_code == 503
    assert err.value.body == {
        "detail": "the graph service is unavailable, try again shortly",
        "service": "graph",
    }
    await up.aclose()


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_body"),
    [
        (404, {"detail": "user 9 not found"}, 404, {"detail": "user 9 not found"}),
        (409, {"detail": "dup"}, 409, {"detail": "dup"}),
        (422, ["weird"], 422, {"detail": ["weird"]}),
        (
            503,
            {"detail": "x"},
            503,
            {
                "detail": "the users service cannot reach its store, try again shortly",
                "service": "users",
            },
        ),
        (
            500,
            {"detail": "internal error"},
            502,
            {"detail": "the users service failed", "service": "users"},
        ),
    ],
)
async def test_error_replies(
    status: int, body: object, expected_status: int, expected_body: object
) -> None:
    up = upstream(httpx.MockTransport(lambda r: httpx.Response(status, json=body)))
    with pytest.raises(UpstreamError) as err:
        await up.call("users", "GET", "/users/9")
    assert (err.value.status_code, err.value.body) == (expected_status, expected_body)
    await up.aclose()


async def test_timeouts_are_504() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    up = upstream(httpx.MockTransport(slow))
    with pytest.raises(UpstreamError) as err:
        await up.call("timeseries", "GET", "/analytics")
    assert err.value.status_code == 504
    await up.aclose()


async def test_query_parameters_and_204() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(204)

    up = upstream(httpx.MockTransport(handle))
    reply = await up.call("users", "GET", "/users/batch", params=[("ids", 1), ("ids", 2)])
    assert reply.status_code == 204 and reply.json() is None
    assert seen == ["/users/batch?ids=1&ids=2"]
    await up.aclose()


def test_forwarded_headers_carry_neither_the_token_nor_an_actor() -> None:
    incoming = {
        "authorization": "Bearer secret",
        "idempotency-key": "k1",
        "cookie": "c",
        "x-user-id": "1",
    }
    assert forwarded_headers(incoming) == {"idempotency-key": "k1"}
    assert forwarded_headers({}) == {}


async def test_every_call_is_signed_for_its_service_with_the_actor_in_the_token() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={})

    up = upstream(httpx.MockTransport(handle))
    await up.call("graph", "GET", "/graph", actor=Principal(user_id=7, admin=True))
    await up.call("users", "GET", "/users/1")
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in seen]
    assert claims[0]["aud"] == "graph" and claims[0]["sub"] == "7" and claims[0]["admin"] is True
    assert claims[0]["iss"] == "gateway" and jwt.get_unverified_header(seen[0])["alg"] == "EdDSA"
    assert claims[1]["aud"] == "users" and "sub" not in claims[1]
    await up.aclose()
