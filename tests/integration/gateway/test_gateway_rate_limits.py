"""Rate limits: the limiter itself against the real Redis, then one burst over HTTP.

The HTTP test cannot lower the gateway's process-wide limits for a moment without affecting
every other test, so it uses the admin's per-user override (stored in Redis, read by the same
Lua script that counts): a fresh user gets a limit of 5 per minute, which nothing else shares."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from gateway_helpers import Account
from redis.asyncio import Redis

from campus_gateway.cache import Cache
from campus_gateway.config import get_settings
from campus_gateway.ratelimit import RateLimiter, counter_key

pytestmark = pytest.mark.integration


@pytest.fixture
def limiter(redis: Redis) -> RateLimiter:
    return RateLimiter(Cache(redis, get_settings()), window_s=30, per_address=5, per_user=3)


async def test_fixed_window_per_address_and_user(limiter: RateLimiter, redis: Redis) -> None:
    address = f"test-{uuid.uuid4().hex}"
    user = int(uuid.uuid4().int % 10**15) + 10**15
    try:
        verdicts = [await limiter.check(address=address, user_id=None) for _ in range(6)]
        assert [v.allowed for v in verdicts] == [True] * 5 + [False]
        assert [v.remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
        assert 1 <= verdicts[-1].retry_after <= 30

        # The user's own limit (3) is tighter than a fresh address's (5).
        other_address = f"test-{uuid.uuid4().hex}"
        per_user = [await limiter.check(address=other_address, user_id=user) for _ in range(4)]
        assert [v.allowed for v in per_user] == [True, True, True, False]
    finally:
        await redis.delete(
            counter_key("addr", address),
            counter_key("addr", other_address),
            counter_key("user", str(user)),
        )


async def test_counting_is_atomic_under_concurrency(limiter: RateLimiter, redis: Redis) -> None:
    address = f"test-{uuid.uuid4().hex}"
    try:
        verdicts = await asyncio.gather(
            *(limiter.check(address=address, user_id=None) for _ in range(50))
        )
        assert sum(v.allowed for v in verdicts) == 5
    finally:
        await redis.delete(counter_key("addr", address))


async def test_overrides_and_unlimited(limiter: RateLimiter, redis: Redis) -> None:
    address = f"test-{uuid.uuid4().hex}"
    try:
        await limiter.set_override(scope="addr", subject=address, limit=2, window_s=10, ttl_s=60)
        allowed = [(await limiter.check(address=address, user_id=None)).allowed for _ in range(3)]
        assert allowed == [True, True, False]
        assert 0 < await redis.ttl(counter_key("addr", address)) <= 10

        await limiter.set_override(scope="addr", subject=address, limit=0, window_s=10, ttl_s=60)
        verdicts = [await limiter.check(address=address, user_id=None) for _ in range(20)]
        assert all(v.allowed and v.remaining == -1 for v in verdicts)

        await limiter.clear_override(scope="addr", subject=address)
        assert (await limiter.check(address=address, user_id=None)).remaining == 4
    finally:
        await limiter.clear_override(scope="addr", subject=address)


async def test_http_burst_gets_429_with_retry_after(
    http: httpx.AsyncClient, gw: str, account: Account, other: Account, admin: Account
) -> None:
    override = {"limit": 5, "window_s": 60, "ttl_s": 120}
    resp = await http.put(
        f"{gw}/admin/rate-limits/user/{account.id}", json=override, headers=admin.auth
    )
    assert resp.status_code == 200, resp.text
    try:
        codes = []
        for _ in range(8):
            resp = await http.get(f"{gw}/users/{account.id}", headers=account.auth)
            codes.append(resp.status_code)
        assert codes == [200] * 5 + [429] * 3
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        assert "rate limit" in resp.json()["detail"]
        # Someone else, from the same address, is not affected.
        assert (await http.get(f"{gw}/users/{account.id}", headers=other.auth)).status_code == 200
    finally:
        await http.delete(f"{gw}/admin/rate-limits/user/{account.id}", headers=admin.auth)
    assert (await http.get(f"{gw}/users/{account.id}", headers=account.auth)).status_code == 200


async def test_the_leaderboard_counts_in_the_same_windows(
    http: httpx.AsyncClient, gw: str, account: Account, admin: Account
) -> None:
    # The leaderboard counts the request in the round trip that reads the ranking: the same
    # per-user window as every other route, so a profile read and the leaderboard share it.
    override = {"limit": 4, "window_s": 60, "ttl_s": 120}
    resp = await http.put(
        f"{gw}/admin/rate-limits/user/{account.id}", json=override, headers=admin.auth
    )
    assert resp.status_code == 200, resp.text
    board = f"{gw}/recommendations/leaderboard"
    try:
        assert (await http.get(f"{gw}/users/{account.id}", headers=account.auth)).status_code == 200
        codes = [(await http.get(board, headers=account.auth)).status_code for _ in range(5)]
        assert codes == [200] * 3 + [429] * 2
        resp = await http.get(board, headers=account.auth)
        assert resp.status_code == 429 and "rate limit" in resp.json()["detail"]
        assert 1 <= int(resp.headers["retry-after"]) <= 60
    finally:
        await http.delete(f"{gw}/admin/rate-limits/user/{account.id}", headers=admin.auth)
    resp = await http.get(board, headers=account.auth)
    assert resp.status_code == 200 and isinstance(resp.json(), list)
