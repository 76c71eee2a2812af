"""Bearer tokens: short-lived HS256 JWTs, and who may act as whom."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import HTTPException, Request, status

from campus_common.errors import ForbiddenError
from campus_common.web import MAX_ID
from campus_gateway.config import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti"]
SUBJECT = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling."""

    user_id: int
    admin: bool = False


def issue_token(settings: Settings, *, user_id: int, admin: bool) -> str:
    """A signed token for one user."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.jwt_ttl_s,
        "jti": uuid.uuid4().hex,
        "admin": admin,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def is_admin_login(settings: Settings, *, email: str, password: str) -> bool:
    """The admin is whoever logs in with the configured admin email *and* admin password, so an
    account that merely registered that email first never becomes admin."""
    return email.strip().lower() == settings.admin_email.lower() and hmac.compare_digest(
        password.encode(), settings.admin_password.get_secret_value().encode()
    )


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify signature, algorithm and expiry; 401 otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],  # fixed: `alg: none` or any other algorithm is refused
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise unauthorized("invalid token") from exc
    sub = claims.get("sub")
    # Exactly what issue_token writes: str.isdigit() also passes superscripts (int() then raises)
    # and other scripts' digits (another spelling of an id); past bigint is no user of ours.
    if not isinstance(sub, str) or not SUBJECT.fullmatch(sub) or int(sub) > MAX_ID:
        raise unauthorized("invalid token")
    return Principal(user_id=int(sub), admin=claims.get("admin") is True)


def bearer(request: Request) -> str | None:
    """The bearer token of the request, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected 'Authorization: Bearer <token>'")
    return token.strip()


def ensure_self(principal: Principal, user_id: int, *, action: str = "act") -> None:
    """A user may act only as themself; the admin may act as anyone."""
    if principal.admin or principal.user_id == user_id:
        return
    raise ForbiddenError(f"you may only {action} as yourself (you are user {principal.user_id})")
