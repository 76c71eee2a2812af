from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, status

from campus_common.errors import ForbiddenError, NotFoundError
from campus_common.internal_auth import (
    Caller,
    InternalCaller,
    ensure_acts_as,
    gateway_or_operator,
)
from campus_common.web import MAX_ID, After, Id
from campus_users import service
from campus_users.schemas import (
    Credentials,
    GroupCreate,
    GroupRead,
    MembershipCreate,
    MembershipRead,
    Page,
    UserCreate,
    UserRead,
    UserUpdate,
)

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]
Ids = Annotated[list[int], Query(max_length=500)]


async def pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


Pool = Annotated[asyncpg.Pool, Depends(pool)]


@router.post("/users", status_code=status.HTTP_201_CREATED, tags=["users"])
async def create_user(body: UserCreate, pool: Pool) -> UserRead:
    return await service.create_user(pool=pool, data=body)


@router.get("/users", tags=["users"])
async def list_users(pool: Pool, limit: Limit = 50, after: After = 0) -> Page[UserRead]:
    return await service.list_users(pool=pool, after=after, limit=limit)


@router.get("/users/batch", tags=["users"])
async def get_users(pool: Pool, ids: Ids) -> list[UserRead]:
    return await service.get_users(pool=pool, ids=[i for i in ids if 0 < i <= MAX_ID])


@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: Id, pool: Pool) -> UserRead:
    return await service.get_user(pool=pool, user_id=user_id)


@router.put("/users/{user_id}", tags=["users"])
async def update_user(
    user_id: Id, body: UserUpdate, pool: Pool, caller: InternalCaller
) -> UserRead:
    """Change email, name or password; a new password needs the current one (not for the admin)."""
    ensure_acts_as(caller, user_id, action="edit a profile")
    return await service.update_user(
        pool=pool, user_id=user_id, data=body, check_current=not caller.privileged
    )


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
async def delete_user(user_id: Id, pool: Pool, caller: InternalCaller) -> None:
    ensure_acts_as(caller, user_id, action="delete an account")
    await service.delete_user(pool=pool, user_id=user_id)


@router.post("/auth/verify", tags=["auth"])
async def verify(
    body: Credentials, pool: Pool, _: Annotated[Caller, Depends(gateway_or_operator)]
) -> UserRead:
    """Check a password here, so the hash never leaves this service."""
    user = await service.verify_credentials(
        pool=pool, email=str(body.email), password=body.password
    )
    if user is None:
        raise NotFoundError("unknown email or wrong password")
    return user


@router.get("/users/{user_id}/groups", tags=["memberships"])
async def user_groups(user_id: Id, pool: Pool) -> list[MembershipRead]:
    return await service.user_groups(pool=pool, user_id=user_id)


@router.post("/groups", status_code=status.HTTP_201_CREATED, tags=["groups"])
async def create_group(body: GroupCreate, pool: Pool) -> GroupRead:
    return await service.create_group(pool=pool, data=body)


@router.get("/groups", tags=["groups"])
async def list_groups(pool: Pool, limit: Limit = 50, after: After = 0) -> Page[GroupRead]:
    return await service.list_groups(pool=pool, after=after, limit=limit)


@router.get("/groups/batch", tags=["groups"])
async def get_groups(pool: Pool, ids: Ids) -> list[GroupRead]:
    return await service.get_groups(pool=pool, ids=[i for i in ids if 0 < i <= MAX_ID])


@router.get("/groups/{group_id}", tags=["groups"])
async def get_group(group_id: Id, pool: Pool) -> GroupRead:
    return await service.get_group(pool=pool, group_id=group_id)


@router.post(
    "/groups/{group_id}/members", status_code=status.HTTP_201_CREATED, tags=["memberships"]
)
async def join_group(
    group_id: Id, body: MembershipCreate, pool: Pool, caller: InternalCaller
) -> MembershipRead:
    ensure_acts_as(caller, body.user_id, action="join a group")
    if body.role != "member" and not caller.privileged:
        raise ForbiddenError(f"only the admin may grant the role {body.role!r}")
    return await service.join_group(pool=pool, group_id=group_id, data=body)


@router.get("/groups/{group_id}/members", tags=["memberships"])
async def group_members(group_id: Id, pool: Pool) -> list[MembershipRead]:
    return await service.group_members(pool=pool, group_id=group_id)


@router.get("/groups/{group_id}/members/{user_id}", tags=["memberships"])
async def get_membership(group_id: Id, user_id: Id, pool: Pool) -> MembershipRead:
    return await service.get_membership(pool=pool, group_id=group_id, user_id=user_id)


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["memberships"],
)
async def leave_group(group_id: Id, user_id: Id, pool: Pool, caller: InternalCaller) -> None:
    ensure_acts_as(caller, user_id, action="leave a group")
    await service.leave_group(pool=pool, group_id=group_id, user_id=user_id)
