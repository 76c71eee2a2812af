"""Login limits (per account, per address), what happens when Redis is down is in
tests/integration/gateway/test_gateway_degradation.py; password changes need the current one."""

from __future__ import annotations

import uuid

import httpx
import pytest
from redis.asyncio import Redis

from campus_gateway.cache import Cache
from campus_gateway.config import get_settings
from campus_gateway.ratelimit import LoginLimits, RateLimiter, login_key
from tests.conftest import StackSettings
from tests.e2e.security.security_helpers import PASSWORD, Account, login

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(180)]


async def test_wrong_passwords_lock_the_account_for_a_while(
    gw: httpx.AsyncClient, user: Account
) -> None:
    failures = get_settings().login_failures_per_account
    for _ in range(failures):
        r = await gw.post("/auth/token", data={"username": user.email, "password": "guess-wrong"})
        assert r.status_code == 401, r.text
    locked = await gw.post("/auth/token", data={"username": user.email, "password": "guess"})
    assert locked.status_code == 429, locked.text
    assert int(locked.headers["retry-after"]) > 0
    # The right password does not get through either while the lock lasts (no oracle).
    right = await gw.post("/auth/token", data={"username": user.email, "password": PASSWORD})
    assert right.status_code == 429
    # The account's existing token still works: the lock is on guessing, not on the user.
    assert (await gw.get(f"/users/{user.id}", headers=user.auth)).status_code == 200


async def test_the_address_limit_counts_every_attempt(stack: StackSettings) -> None:
    """The login limiter's script against the real Redis, for a made-up address."""
    redis = Redis(
        **stack.redis_client_options(),
        socket_timeout=2,
    )
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    try:
        await redis.delete(login_key(address))
        limiter = RateLimiter(
            Cache(redis, get_settings()),
            window_s=60,
            per_address=1000,
            per_user=1000,
            login=LoginLimits(window_s=60, per_address=3, failures_per_account=100),
        )
        verdicts = [
            await limiter.check_login(address=address, account=f"a{i}@x.edu") for i in range(4)
        ]
        assert [v.allowed for v in verdicts] == [True, True, True, False]
        assert 0 < verdicts[-1].retry_after <= 60
    finally:
        await redis.delete(login_key(address))
        await redis.aclose()


async def test_a_new_password_needs_the_current_one(gw: httpx.AsyncClient, user: Account) -> None:
    url = f"/users/{user.id}"
    missing = await gw.put(url, json={"password": "brand new password"}, headers=user.auth)
    assert missing.status_code == 422 and "current_password" in missing.json()["detail"]
    wrong = await gw.put(
        url,
        json={"password": "brand new password", "current_password": "not it"},
        headers=user.auth,
    )
    assert wrong.status_code == 403
    ok = await gw.put(
        url,
        json={"password": "brand new password", "current_password": PASSWORD},
        headers=user.auth,
    )
    assert ok.status_code == 200, ok.text
    assert await login(gw, user.email, "brand new password")
    # Renaming needs no password.
    renamed = await gw.put(url, json={"full_name": "Ada Renamed"}, headers=user.auth)
    assert renamed.status_code == 200
