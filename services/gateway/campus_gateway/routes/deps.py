"""Dependencies shared by the routes: the gateway's resources, the caller, rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordBearer

from campus_common.errors import ForbiddenError
from campus_common.web import MAX_ID
from campus_gateway.auth import Principal, bearer, decode_token, unauthorized
from campus_gateway.cache import Kind
from campus_gateway.ratelimit import RateLimiter, Verdict
from campus_gateway.service import Counted, Gateway, GoneAccountError, counted_profile, user_exists
from campus_gateway.upstream import Reply, forwarded_headers

Id = Annotated[int, Path(gt=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=100)]
# Document ids are opaque to the gateway (ObjectId hex today); bound them, the service checks.
PostId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


async def gateway(request: Request) -> Gateway:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return request.app.state.gateway  # type: ignore[no-any-return]


Gw = Annotated[Gateway, Depends(gateway)]


# Declares the scheme in OpenAPI, so /docs has an "Authorize" button that logs in for you.
oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def optional_principal(
    gw: Gw, token: Annotated[str | None, Depends(oauth2)]
) -> Principal | None:
    """The caller when a token is sent (it must then be valid), else None."""
    if token is None:
        return None
    principal = decode_token(gw.settings, token)
    # A token outlives nothing: once the account is deleted it stops working.
    if not await user_exists(gw=gw, user_id=principal.user_id):
        raise unauthorized("the account of this token no longer exists")
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """The caller; 401 without a valid bearer token."""
    if principal is None:
        raise unauthorized(
            "sign in first: POST /auth/token, then send 'Authorization: Bearer <token>'"
        )
    return principal


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The admin; 403 for anyone else."""
    if not principal.admin:
        raise ForbiddenError("only the admin may do this")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]


def token_user(request: Request, gw: Gateway) -> int | None:
    """The user of the request's token when it is valid, for the per-user rate limit."""
    try:
        token = bearer(request)
        principal = decode_token(gw.settings, token) if token else None
    except HTTPException:
        return None  # the route itself answers 401 where a token is needed
    return principal.user_id if principal else None


async def rate_limited(request: Request, gw: Gw) -> None:
    """Count the request against its address and (with a valid token) its user; 429 over it."""
    limiter: RateLimiter = request.app.state.limiter
    verdict = await limiter.check(address=client_address(request), user_id=token_user(request, gw))
    if not verdict.allowed:
        raise too_many(verdict)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def too_many(verdict: Verdict) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"rate limit exceeded, retry in {verdict.retry_after} s",
        headers={"Retry-After": str(verdict.retry_after)},
    )


BearerToken = Annotated[str | None, Depends(oauth2)]


async def counted_read(
    *, request: Request, gw: Gateway, token: str | None, kind: Kind, entity_id: int
) -> tuple[Principal | None, Counted]:
    """A cached profile read for a route without `rate_limited`: the request's rate-limit
    counts, the caller's account and the entry in one Redis round trip; 401/429 as elsewhere."""
    try:
        caller = decode_token(gw.settings, token) if token else None
    except HTTPException:
        await rate_limited(request, gw)  # counted by address like any request, then refused
        raise
    try:
        read = await counted_profile(
            gw=gw,
            limiter=request.app.state.limiter,
            address=client_address(request),
            caller=caller,
            kind=kind,
            entity_id=entity_id,
        )
    except GoneAccountError as exc:
        raise unauthorized("the account of this token no longer exists") from exc
    if not read.verdict.allowed:
        raise too_many(read.verdict)
    return caller, read


def forwarded(request: Request) -> dict[str, str]:
    """The client headers passed on to a service."""
    return forwarded_headers(request.headers)


def passthrough(reply: Reply) -> Response:
    """A service's answer as the gateway's, without parsing it."""
    if reply.status_code == status.HTTP_204_NO_CONTENT or not reply.content:
        return Response(status_code=reply.status_code, headers=reply.headers)
    return Response(
        reply.content,
        status_code=reply.status_code,
        media_type="application/json",
        headers=reply.headers,
    )
