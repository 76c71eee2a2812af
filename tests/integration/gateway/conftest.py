"""Fixtures for the gateway's integration tests: accounts with tokens, the admin, Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from gateway_helpers import Account, login, register, token_subject
from redis.asyncio import Redis

from tests.conftest import StackSettings


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
        **stack.redis_client_options(),
        socket_timeout=2,
    )
    try:
        yield client
    finally:
        await client.aclose()
