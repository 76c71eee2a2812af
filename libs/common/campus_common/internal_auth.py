"""Service-to-service authentication: short-lived EdDSA (Ed25519) JWTs, one audience per service.

Each caller (the gateway, the documents and graph services, the operator's CLI) holds its own
private key; the services hold only public keys. A service that can verify a token therefore
cannot forge one, and a leaked public key is harmless. The acting user travels in the token's
`sub` (set by the gateway after it checked the user's own token), never in a header a client
could set.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, HTTPException, Request, status

from campus_common.errors import ForbiddenError

ALGORITHM = "EdDSA"
TTL_S = 60
# Who may call whom. The operator (the `campus` CLI, tests, the bench) may call everything.
TRUSTED: Mapping[str, frozenset[str]] = {
    "users": frozenset({"gateway", "documents", "graph", "operator"}),
    "documents": frozenset({"gateway", "operator"}),
    "graph": frozenset({"gateway", "operator"}),
    "timeseries": frozenset({"gateway", "operator"}),
}
ISSUERS = ("gateway", "documents", "graph", "operator")
REQUIRED = ["iss", "aud", "exp", "iat", "jti"]
# A signed token is re-used for up to half its life, so a busy caller signs about once per
# (audience, user) every 30 s instead of on every request.
_REUSE_S = TTL_S // 2
_CACHE_MAX = 10_000


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) pair as unpadded URL-safe base64 of the raw 32-byte keys."""
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    enc = base64.urlsafe_b64encode
    return enc(raw).decode().rstrip("="), enc(pub).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request to a service: the signing component and the user it acts for."""

    issuer: str
    user_id: int | None = None
    admin: bool = False

    @property
    def operator(self) -> bool:
        return self.issuer == "operator"

    @property
    def privileged(self) -> bool:
        """The operator, or the gateway acting for the admin."""
        return self.operator or self.admin

    def may_act_as(self, user_id: int) -> bool:
        """Whether this caller may act for `user_id` (itself, or privileged)."""
        return self.privileged or (self.user_id is not None and self.user_id == user_id)


class Signer:
    """Mints tokens for one issuer with its private key."""

    def __init__(self, *, issuer: str, private_key: str) -> None:
        if issuer not in ISSUERS:
            raise ValueError(f"unknown issuer {issuer!r}")
        try:
            self._key = Ed25519PrivateKey.from_private_bytes(_b64decode(private_key))
        except ValueError as exc:
            raise ValueError(f"the {issuer} signing key is not a raw Ed25519 key") from exc
        self.issuer = issuer
        self._cache: dict[tuple[str, int | None, bool], tuple[float, str]] = {}

    def token(self, *, audience: str, user_id: int | None = None, admin: bool = False) -> str:
        """A token for one service, acting for `user_id` (or for no user)."""
        now = time.time()
        cache_key = (audience, user_id, admin)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        issued = int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": issued,
            "exp": issued + TTL_S,
            "jti": uuid.uuid4().hex,
            "admin": admin,
        }
        if user_id is not None:
            claims["sub"] = str(user_id)
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[cache_key] = (now + _REUSE_S, token)
        return token

    def headers(
        self, *, audience: str, user_id: int | None = None, admin: bool = False
    ) -> dict[str, str]:
        """The Authorization header for one request."""
        return {
            "authorization": f"Bearer {self.token(audience=audience, user_id=user_id, admin=admin)}"
        }


class ServiceAuth(httpx.Auth):
    """httpx auth for a client that calls one service as its own component (no user)."""

    def __init__(self, signer: Signer, audience: str) -> None:
        self.signer = signer
        self.audience = audience

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.signer.token(audience=self.audience)}"
        yield request


class OperatorAuth(httpx.Auth):
    """httpx auth for the operator's tools (CLI, tests, bench): the audience follows the port.

    An `X-User-Id` header on the request names the user to act for; it is moved into the signed
    token's `sub` and removed, because services never read that header.
    """

    def __init__(self, signer: Signer, ports: Mapping[int, str]) -> None:
        self.signer = signer
        self.ports = dict(ports)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        audience = self.ports.get(request.url.port or 80)
        if audience is not None and "authorization" not in request.headers:
            acting = request.headers.pop("x-user-id", None)
            user_id = int(acting) if acting and acting.isdigit() else None
            token = self.signer.token(audience=audience, user_id=user_id)
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


class Verifier:
    """Checks tokens addressed to one service against the public keys of its trusted callers."""

    def __init__(self, *, audience: str, public_keys: Mapping[str, str]) -> None:
        self.audience = audience
        trusted = TRUSTED[audience]
        self._keys: dict[str, Ed25519PublicKey] = {}
        for issuer, key in public_keys.items():
            if issuer in trusted and key:
                self._keys[issuer] = Ed25519PublicKey.from_public_bytes(_b64decode(key))
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, token: str) -> Caller:
        """The caller, or 401 for anything not signed by a trusted caller for this service.

        A signer re-uses each token for half its life, so a busy service sees the same token
        thousands of times: the Ed25519 check (about 10 % of a post's CPU in the documents
        service) runs once per token, and a repeat is only checked against its expiry. Only
        tokens that passed are kept, keyed by their whole signed text.
        """
        verified = self._verified.get(token)
        if verified is not None and verified[1] > time.time():
            return verified[0]
        caller, expires = self._verify(token)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (caller, expires)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid service token") from exc
        if not isinstance(issuer, str):
            raise _unauthorized("invalid service token: no issuer")
        key = self._keys.get(issuer)
        if key is None:
            raise _unauthorized(
                f"callers named {issuer!r} may not call the {self.audience} service"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # fixed: no `none`, no HMAC with a public key as secret
                audience=self.audience,
                issuer=issuer,
                options={"require": REQUIRED},
            )
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid service token: {exc}") from exc
        sub = claims.get("sub")
        user_id = int(sub) if isinstance(sub, str) and sub.isascii() and sub.isdigit() else None
        caller = Caller(issuer=issuer, user_id=user_id, admin=claims.get("admin") is True)
        return caller, float(claims["exp"])


async def internal_caller(request: Request) -> Caller:
    """FastAPI dependency: the verified caller of this service; 401 without a valid token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("this service answers only the gateway and the operator")
    verifier: Verifier = request.app.state.verifier
    caller = verifier.verify(token.strip())
    request.state.caller = caller
    return caller


InternalCaller = Annotated[Caller, Depends(internal_caller)]


async def privileged_caller(caller: InternalCaller) -> Caller:
    """The operator, or the gateway acting for the admin; 403 for anyone else."""
    if not caller.privileged:
        raise ForbiddenError("only the operator or the admin may do this")
    return caller


async def gateway_or_operator(caller: InternalCaller) -> Caller:
    """The gateway or the operator (for what no other service needs, e.g. password checks)."""
    if caller.issuer not in ("gateway", "operator"):
        raise ForbiddenError(f"the {caller.issuer} service may not do this")
    return caller


def ensure_acts_as(caller: Caller, user_id: int, *, action: str = "act") -> None:
    """403 unless the caller may act for `user_id`."""
    if not caller.may_act_as(user_id):
        raise ForbiddenError(f"you may only {action} as yourself")
