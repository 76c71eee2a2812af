"""Accounts and tokens (users service), with cache-aside profiles."""

from __future__ import annotations

import contextlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from campus_common.errors import ConflictError, UnavailableError
from campus_common.web import MAX_ID
from campus_gateway import contract, service
from campus_gateway.auth import ensure_self, is_admin_login, issue_token, unauthorized
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.contract import errors
from campus_gateway.profiles import normalize
from campus_gateway.ratelimit import RateLimiter
from campus_gateway.routes.deps import (
    BearerToken,
    Caller,
    Gw,
    Id,
    MaybeCaller,
    counted_read,
    forwarded,
    passthrough,
    rate_limited,
)
from campus_gateway.schemas import Token, UserCreate, UserUpdate
from campus_gateway.service import Gateway
from campus_gateway.upstream import UpstreamError

router = APIRouter(responses=errors(), dependencies=[Depends(rate_limited)])


@router.post("/auth/token", tags=["auth"])
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], gw: Gw, request: Request
) -> Token:
    """Log in with email (as `username`) and password; returns a short-lived bearer token.

    Limited per address and per account (wrong passwords); 429 with `Retry-After` over either,
    503 while Redis, which keeps the counts, is down (login fails closed)."""
    access = await login(gw=gw, request=request, email=form.username, password=form.password)
    return Token(access_token=access, expires_in=gw.settings.jwt_ttl_s)


async def login(*, gw: Gateway, request: Request, email: str, password: str) -> str:
    """Check the login limits and the password; a signed bearer token, or 401/429/503."""
    limiter: RateLimiter = request.app.state.limiter
    address = request.client.host if request.client else "unknown"
    try:
        verdict = await limiter.check_login(address=address, account=email)
    except CacheUnavailableError as exc:
        raise UnavailableError(
            "login is unavailable while Redis (which counts login attempts) is down"
        ) from exc
    if not verdict.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many login attempts, retry in {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    creds = {"email": email, "password": password}
    try:
        reply = await gw.upstream.call("users", "POST", "/auth/verify", json=creds)
    except UpstreamError as exc:
        if exc.status_code in (404, 422):
            with contextlib.suppress(CacheUnavailableError):
                await limiter.login_failed(account=email)
            raise unauthorized("incorrect email or password") from exc
        raise
    user = reply.json()
    admin = is_admin_login(gw.settings, email=email, password=password)
    return issue_token(gw.settings, user_id=int(user["id"]), admin=admin)


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, tags=["users"], response_model=contract.UserView
)
async def create_user(body: UserCreate, gw: Gw) -> Response:
    """Register (public): email, full_name (or name), password of at least 8 characters."""
    if body.email.strip().lower() == gw.settings.admin_email.lower():
        raise ConflictError(f"the email {body.email} is reserved")
    return passthrough(await gw.upstream.call("users", "POST", "/users", json=body.forward()))


@router.get("/users", tags=["users"], response_model=contract.UserPage)
async def list_users(
    gw: Gw,
    caller: MaybeCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JSONResponse:
    """All users, by id (public profiles; emails only for yourself and the admin); pass
    `next_after` back as `after` for the next page."""
    reply = await gw.upstream.call(
        "users", "GET", "/users", params={"limit": limit, "after": after}
    )
    page = reply.json()
    page["items"] = [service.user_view(u, caller) for u in page["items"]]
    return JSONResponse(page)


# Without `rate_limited`: the cached reads count the request in their own Redis round trip.
reads = APIRouter(responses=errors())


@reads.get("/users/{user_id}", tags=["users"], response_model=contract.UserView)
async def get_user(user_id: Id, gw: Gw, token: BearerToken, request: Request) -> Response:
    """A profile, from Redis when cached (`X-Cache: hit|miss|bypass` says which); the email only
    for its owner and the admin."""
    caller, read = await counted_read(
        request=request, gw=gw, token=token, kind="user", entity_id=user_id
    )
    data = read.data
    if not service.sees_private(caller, user_id):
        data = orjson.dumps(service.user_view(orjson.loads(data), caller))
    return Response(data, media_type="application/json", headers={"X-Cache": read.outcome})


@router.put("/users/{user_id}", tags=["users"], response_model=contract.UserView)
async def update_user(
    user_id: Id, body: UserUpdate, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Change your email, name or password."""
    ensure_self(caller, user_id, action="edit a profile")
    if (
        body.email
        and body.email.strip().lower() == gw.settings.admin_email.lower()
        and not caller.admin
    ):
        raise ConflictError(f"the email {body.email} is reserved")
    reply = await gw.upstream.call(
        "users",
        "PUT",
        f"/users/{user_id}",
        json=body.forward(),
        headers=forwarded(request),
        actor=caller,
    )
    with contextlib.suppress(CacheUnavailableError):
        fresh = normalize("user", reply.content)
        await gw.cache.mark("user", user_id, "S", unless=fresh)
    return passthrough(reply)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
async def delete_user(user_id: Id, gw: Gw, caller: Caller, request: Request) -> Response:
    """Delete your account (its memberships go with it; its tokens stop working)."""
    ensure_self(caller, user_id, action="delete an account")
    reply = await gw.upstream.call(
        "users", "DELETE", f"/users/{user_id}", headers=forwarded(request), actor=caller
    )
    with contextlib.suppress(CacheUnavailableError):
        await gw.cache.mark("user", user_id, "D")
    return passthrough(reply)


@router.get("/users/{user_id}/groups", tags=["groups"], response_model=list[contract.Membership])
async def user_groups(user_id: Id, gw: Gw, caller: Caller) -> Response:
    """The groups a user belongs to, with roles."""
    return passthrough(await gw.upstream.call("users", "GET", f"/users/{user_id}/groups"))
