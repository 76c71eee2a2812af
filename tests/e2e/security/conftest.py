"""Fixtures for the security suite: a client of the public gateway and the accounts it needs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import StackSettings
from tests.e2e.security.security_helpers import Account, login, register, token_subject


@pytest.fixture
async def gw(stack: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of the public gateway; requests choose their own credentials."""
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=15) as http:
        yield http


@pytest.fixture
async def admin(gw: httpx.AsyncClient, stack: StackSettings) -> Account:
    token = await login(gw, stack.admin_email, stack.admin_password.get_secret_value())
    return Account(token_subject(token), stack.admin_email, token)


@pytest.fixture
async def user(gw: httpx.AsyncClient) -> Account:
    return await register(gw, "Ada Security")


@pytest.fixture
async def other(gw: httpx.AsyncClient) -> Account:
    return await register(gw, "Mallory Security")
