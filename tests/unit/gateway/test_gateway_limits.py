"""Start-up refusals and the argon2 gate, without servers."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr, ValidationError

from campus_common.errors import TooManyRequestsError
from campus_common.internal_auth import generate_keypair
from campus_gateway.config import Settings
from campus_users import service as users_service

pytestmark = pytest.mark.unit


def settings(secret: str) -> Settings:
    return Settings(
        redis_password=SecretStr("x"),
        jwt_secret=SecretStr(secret),
        admin_email="admin@x.edu",
        admin_password=SecretStr("z" * 12),
        gateway_signing_key=SecretStr(generate_keypair()[0]),
        connect_password=SecretStr("c" * 12),
    )


def test_a_jwt_secret_under_32_bytes_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        settings("s" * 31)
    assert settings("s" * 32).jwt_secret.get_secret_value() == "s" * 32


async def test_argon2_runs_in_few_slots_and_a_full_queue_answers_429(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(users_service, "ARGON2_WAIT_S", 0.05)
    slots = asyncio.Semaphore(1)
    monkeypatch.setattr(users_service, "_argon2_slots", slots)
    await slots.acquire()  # someone else holds the only slot
    with pytest.raises(TooManyRequestsError) as exc:
        await users_service._argon2(str.upper, "x")
    assert exc.value.status_code == 429 and exc.value.retry_after == 1
    slots.release()
    assert await users_service._argon2(str.upper, "x") == "X"
