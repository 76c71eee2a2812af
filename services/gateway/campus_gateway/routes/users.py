"""Accounts and tokens (users service), with cache-aside profiles."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm

from campus_common.errors import ConflictError
from campus_common.web import MAX_ID
from campus_gateway import service
from campus_gateway.auth import ensure_self, is_admin_login, issue_token, unauthorized
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.routes.deps import Caller, Gw, Id, headers_for, passthrough, rate_limited
from campus_gateway.schemas import Token, UserCreate, UserUpdate
from campus_gateway.upstream import UpstreamError

router = APIRouter(dependencies=[Depends(rate_limited)])


@router.post("/auth/token", tags=["auth"])
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], gw: Gw) -> Token:
    """Log in with email (as `username`) and password; returns a short-lived bearer token."""
    creds = {"email": form.username, "password": form.password}
    try:
        reply = await gw.upstream.call("users", "POST", "/auth/verify", json=creds)
    except UpstreamError as exc:
        if exc.status_code in (404, 422):
            raise unauthorized("incorrect email or password") from exc
        raise
    user = reply.json()
    admin = is_admin_login(gw.settings, email=form.username, password=form.password)
    access = issue_token(gw.settings, user_id=int(user["id"]), admin=admin)
    return Token(access_token=access, expires_in=gw.settings.jwt_ttl_s)


@router.post("/users", status_code=status.HTTP_201_CREATED, tags=["users"])
async def create_user(body: UserCreate, gw: Gw) -> Response:
    """Register (public): email, full_name (or name), password of at least 8 characters."""
    if body.email.strip().lower() == gw.settings.admin_email.lower():
        raise ConflictError(f"the email {body.email} is reserved")
    return passthrough(await gw.upstream.call("users", "POST", "/users", json=body.forward()))


@router.get("/users", tags=["users"])
async def list_users(
    gw: Gw,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    """All users, by id; pass `next_after` back as `after` for the next page."""
    reply = await gw.upstream.call(
        "users", "GET", "/users", params={"limit": limit, "after": after}
    )
    return passthrough(reply)


@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: Id, gw: Gw) -> Response:
    """A profile, from Redis when cached (`X-Cache: hit|miss|bypass` says which)."""
    data, outcome = await service.get_profile(gw=gw, kind="user", entity_id=user_id)
    return Response(data, media_type="application/json", headers={"X-Cache": outcome})


@router.put("/users/{user_id}", tags=["users"])
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
        headers=headers_for(request, caller),
    )
    with contextlib.suppress(CacheUnavailableError):
        fresh = service.normalize("user", reply.content)
        await gw.cache.mark("user", user_id, "S", unless=fresh)
    return passthrough(reply)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
async def delete_user(user_id: Id, gw: Gw, caller: Caller, request: Request) -> Response:
    """Delete your account (its memberships go with it; its tokens stop working)."""
    ensure_self(caller, user_id, action="delete an account")
    reply = await gw.upstream.call(
        "users", "DELETE", f"/users/{user_id}", headers=headers_for(request, caller)
    )
    with contextlib.suppress(CacheUnavailableError):
        await gw.cache.mark("user", user_id, "D")
    return passthrough(reply)


@router.get("/users/{user_id}/groups", tags=["groups"])
async def user_groups(user_id: Id, gw: Gw) -> Response:
    """The groups a user belongs to, with roles."""
    return passthrough(await gw.upstream.call("users", "GET", f"/users/{user_id}/groups"))
