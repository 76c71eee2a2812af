"""Limits that hold under pressure: a concurrent burst gets exactly its quota, and oversized bodies
are refused with 413 whether or not they announce their length; the gateway answers afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.e2e.security.security_helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(120)]

QUOTA = 20
BURST = 60
TWO_MB = 2 * 1024 * 1024


async def test_a_concurrent_burst_gets_exactly_its_quota(
    gw: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    # A per-user override: only this fresh account is limited, nobody else using the stack.
    override = {"limit": QUOTA, "window_s": 60, "ttl_s": 120}
    r = await gw.put(f"/admin/rate-limits/user/{user.id}", json=override, headers=admin.auth)
    assert r.status_code == 200, r.text
    try:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30, limits=limits) as burst:
            replies = await asyncio.gather(
                *(burst.get(f"/users/{user.id}", headers=user.auth) for _ in range(BURST))
            )
        codes = Counter(r.status_code for r in replies)
        assert codes == {200: QUOTA, 429: BURST - QUOTA}, codes
        for refused in (r for r in replies if r.status_code == 429):
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert "rate limit" in refused.json()["detail"]
        # Writes count against the same quota: still refused, and nothing is created.
        r = await gw.post("/groups", json={"name": "over", "course_code": "Q"}, headers=user.auth)
        assert r.status_code == 429, r.text
    finally:
        await gw.delete(f"/admin/rate-limits/user/{user.id}", headers=admin.auth)
    assert (await gw.get(f"/users/{user.id}", headers=user.auth)).status_code == 200


async def _chunks(payload: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def test_oversized_bodies_are_refused_and_the_gateway_carries_on(
    gw: httpx.AsyncClient, user: Account
) -> None:
    json_type = {"content-type": "application/json"}
    big = orjson.dumps({"title": "big", "body": "x" * TWO_MB})

    sized = await gw.post("/posts", content=big, headers={**user.auth, **json_type})
    assert sized.status_code == 413, sized.text
    assert "larger than" in sized.json()["detail"]
    anonymous = await gw.post("/users", content=big, headers=json_type)
    assert anonymous.status_code == 413, anonymous.text
    form = {"username": "x" * TWO_MB, "password": "y"}
    assert (await gw.post("/auth/token", data=form)).status_code == 413

    # Streamed without a length, it is cut off after the cap and never processed (whatever
    # the status: see the test below).
    streamed = await _streamed(gw, user, big)
    assert streamed.status_code in (400, 413), streamed.text
    mine = (await gw.get("/posts", params={"author_id": user.id})).json()["items"]
    assert mine == []

    assert (await gw.get("/health")).status_code == 200
    ok = await gw.post("/posts", json={"title": "after the flood"}, headers=user.auth)
    assert ok.status_code == 201, ok.text


async def test_a_streamed_oversized_body_is_413(gw: httpx.AsyncClient, user: Account) -> None:
    big = orjson.dumps({"title": "big", "body": "x" * TWO_MB})
    streamed = await _streamed(gw, user, big)
    assert streamed.status_code == 413, streamed.text


async def _streamed(gw: httpx.AsyncClient, user: Account, payload: bytes) -> httpx.Response:
    """POST with Transfer-Encoding: chunked and no Content-Length (httpx does so for an async
    iterator), so only counting the bytes as they arrive can stop it."""
    headers = {**user.auth, "content-type": "application/json"}
    resp = await gw.post("/posts", content=_chunks(payload), headers=headers)
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in resp.request.headers
    return resp
