"""Fixtures for the gateway's integration tests: accounts with tokens, the admin, Redis."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from tests.conftest import StackSettings
from tests.helpers import unique_email

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_subject(token: str) -> int:
    payload = token.split(".")[1]
    return int(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def login(http: httpx.AsyncClient, base: str, email: str, password: str) -> str:
    resp = await http.post(f"{base}/auth/token", data={"username": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    return str(body["access_token"])


async def register(http: httpx.AsyncClient, base: str, *, name: str = "Ada Student") -> Account:
    email = unique_email("gw")
    resp = await http.post(
        f"{base}/users", json={"email": email, "full_name": name, "password": PASSWORD}
    )
    assert resp.status_code == 201, resp.text
    user = resp.json()
    return Account(id=user["id"], email=email, token=await login(http, base, email, PASSWORD))


@pytest.fixture(scope="session")
def gw(stack: StackSettings) -> str:
    return stack.service_url("gateway")


@pytest.fixture
async def account(http: httpx.AsyncClient, gw: str) -> Account:
    return await register(http, gw, name="Ada Student")


@pytest.fixture
async def other(http: httpx.AsyncClient, gw: str) -> Account:
    return await register(http, gw, name="Grace Student")


@pytest.fixture
async def admin(http: httpx.AsyncClient, gw: str, stack: StackSettings) -> Account:
    password = stack.admin_password.get_secret_value()
    token = await login(http, gw, stack.admin_email, password)
    return Account(id=token_subject(token), email=stack.admin_email, token=token)


@pytest.fixture
async def redis(stack: StackSettings) -> AsyncIterator[Redis]:
    client = Redis(
        host=stack.redis_host,
        port=stack.redis_port,
        password=stack.redis_password.get_secret_value(),
        socket_timeout=2,
    )
    try:
        yield client
    finally:
        await client.aclose()
