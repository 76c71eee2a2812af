"""Tokens: what is accepted, what is refused, who may act as whom."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from fastapi import HTTPException
from pydantic import SecretStr

from campus_common.errors import ForbiddenError
from campus_common.internal_auth import generate_keypair
from campus_gateway.auth import (
    Principal,
    decode_token,
    ensure_self,
    is_admin_login,
    issue_token,
)
from campus_gateway.config import Settings

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        redis_password=SecretStr("x"),
        jwt_secret=SecretStr(SECRET),
        admin_email="Admin@Campus.example",
        admin_password=SecretStr("admin-password-1"),
        gateway_signing_key=SecretStr(generate_keypair()[0]),
        connect_password=SecretStr("c" * 12),
        jwt_ttl_s=60,
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "7", "iat": now, "exp": now + 60, "jti": "abc", "admin": False, **over}


def test_issued_token_round_trips(settings: Settings) -> None:
    token = issue_token(settings, user_id=42, admin=True)
    assert decode_token(settings, token) == Principal(user_id=42, admin=True)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(claims) == {"sub", "iat", "exp", "jti", "admin"}
    assert claims["exp"] - claims["iat"] == 60


def test_two_tokens_have_distinct_ids(settings: Settings) -> None:
    a, b = (
        jwt.decode(issue_token(settings, user_id=1, admin=False), SECRET, algorithms=["HS256"])
        for _ in "ab"
    )
    assert a["jti"] != b["jti"]


@pytest.mark.parametrize(
    ("token_of", "detail"),
    [
        (
            lambda: jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256"),
            "token expired",
        ),
        (
            lambda: jwt.encode(
                _claims(), "another-secret-of-sufficient-length!!", algorithm="HS256"
            ),
            "invalid token",
        ),
        (lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.", "invalid token"),
        (lambda: jwt.encode(_claims(), SECRET * 2, algorithm="HS512"), "invalid token"),
        (
            lambda: jwt.encode(
                {k: v for k, v in _claims().items() if k != "jti"}, SECRET, algorithm="HS256"
            ),
            "invalid token",
        ),
        (
            lambda: jwt.encode(_claims(sub="not-a-number"), SECRET, algorithm="HS256"),
            "invalid token",
        ),
        (lambda: jwt.encode(_claims(sub="0"), SECRET, algorithm="HS256"), "invalid token"),
        (lambda: "garbage", "invalid token"),
    ],
    ids=[
        "expired",
        "wrong-signature",
        "alg-none",
        "other-alg",
        "no-jti",
        "bad-sub",
        "zero-sub",
        "garbage",
    ],
)
def test_bad_tokens_are_401(settings: Settings, token_of: object, detail: str) -> None:
    with pytest.raises(HTTPException) as err:
        decode_token(settings, token_of())  # type: ignore[operator]
    assert err.value.status_code == 401
    assert err.value.detail == detail
    assert err.value.headers == {"WWW-Authenticate": "Bearer"}


def test_admin_flag_must_be_exactly_true(settings: Settings) -> None:
    token = jwt.encode(_claims(admin="yes"), SECRET, algorithm="HS256")
    assert decode_token(settings, token).admin is False


def test_admin_needs_the_admin_email_and_the_admin_password(settings: Settings) -> None:
    assert is_admin_login(settings, email=" admin@campus.EXAMPLE ", password="admin-password-1")
    assert not is_admin_login(settings, email="admin@campus.example", password="someone-elses")
    assert not is_admin_login(settings, email="other@campus.example", password="admin-password-1")


def test_users_act_only_as_themselves() -> None:
    ensure_self(Principal(5), 5)
    ensure_self(Principal(1, admin=True), 5)
    with pytest.raises(ForbiddenError, match="only post as yourself"):
        ensure_self(Principal(4), 5, action="post")
