"""Users, groups and memberships: the rules, over the repository."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from starlette.concurrency import run_in_threadpool

from campus_common import telemetry
from campus_common.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TooManyRequestsError,
)
from campus_common.telemetry import current_traceparent
from campus_users import repository as repo
from campus_users.schemas import (
    GroupCreate,
    GroupRead,
    MembershipCreate,
    MembershipRead,
    Page,
    UserCreate,
    UserRead,
    UserUpdate,
)

T = TypeVar("T")
_hasher = PasswordHasher()
# Each argon2 call takes 64 MiB and a core for a while: at most this many run at once, and a
# request that cannot get a slot soon is told to retry (429) instead of piling up memory.
ARGON2_SLOTS = 2
ARGON2_WAIT_S = 5.0
_argon2_slots = asyncio.Semaphore(ARGON2_SLOTS)
# Verifying against this keeps an unknown email as slow as a wrong password (no user probing).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def _argon2(fn: Callable[..., T], *args: str) -> T:
    """Run an argon2 call in a worker thread, in one of the few slots."""
    try:
        await asyncio.wait_for(_argon2_slots.acquire(), ARGON2_WAIT_S)
    except TimeoutError as exc:
        raise TooManyRequestsError(
            "too many password checks in progress, retry shortly", retry_after=1
        ) from exc
    try:
        # argon2 is deliberately CPU-heavy: keep it off the event loop.
        return await run_in_threadpool(fn, *args)
    finally:
        _argon2_slots.release()


async def _hash(password: str) -> str:
    # Its own span, because it is most of a registration's time and would otherwise be an
    # unexplained gap in the trace.
    with telemetry.tracer(__name__).start_as_current_span("argon2 hash"):
        return await _argon2(_hasher.hash, password)


async def create_user(*, pool: asyncpg.Pool, data: UserCreate) -> UserRead:
    """Create a user; 409 when the email is taken (case-insensitively)."""
    password_hash = await _hash(data.password)
    try:
        async with pool.acquire() as conn:
            row = await repo.insert_user(
                conn,
                email=str(data.email),
                full_name=data.full_name,
                password_hash=password_hash,
                trace_context=current_traceparent(),
            )
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError(f"a user with email {data.email} already exists") from exc
    except asyncpg.CheckViolationError as exc:
        raise InvalidError(f"invalid user: {exc.constraint_name}") from exc
    return UserRead(**dict(row))


async def get_user(*, pool: asyncpg.Pool, user_id: int) -> UserRead:
    """One user, or 404."""
    async with pool.acquire() as conn:
        row = await repo.get_user(conn, user_id=user_id)
    if row is None:
        raise NotFoundError(f"user {user_id} not found")
    return UserRead(**dict(row))


async def get_users(*, pool: asyncpg.Pool, ids: list[int]) -> list[UserRead]:
    """The users among `ids` that exist."""
    async with pool.acquire() as conn:
        rows = await repo.get_users(conn, ids=ids)
    return [UserRead(**dict(r)) for r in rows]


async def list_users(*, pool: asyncpg.Pool, after: int, limit: int) -> Page[UserRead]:
    """Users by id, keyset-paginated."""
    async with pool.acquire() as conn:
        rows = await repo.list_users(conn, after=after, limit=limit)
    items = [UserRead(**dict(r)) for r in rows]
    return Page[UserRead](items=items, next_after=items[-1].id if len(items) == limit else None)


async def update_user(
    *, pool: asyncpg.Pool, user_id: int, data: UserUpdate, check_current: bool = True
) -> UserRead:
    """Change email, name or password; a new password needs the current one if `check_current`."""
    changes: dict[str, Any] = data.model_dump(
        exclude_unset=True, exclude_none=True, exclude={"current_password"}
    )
    if "email" in changes:
        changes["email"] = str(changes["email"])
    if "password" in changes and check_current:
        await _check_current_password(pool=pool, user_id=user_id, password=data.current_password)
    if "password" in changes:
        changes["password_hash"] = await _hash(changes.pop("password"))
    try:
        async with pool.acquire() as conn:
            row = await repo.update_user(
                conn, user_id=user_id, changes=changes, trace_context=current_traceparent()
            )
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError(f"a user with email {data.email} already exists") from exc
    if row is None:
        raise NotFoundError(f"user {user_id} not found")
    return UserRead(**dict(row))


async def _check_current_password(
    *, pool: asyncpg.Pool, user_id: int, password: str | None
) -> None:
    # Whoever holds a stolen session token must not be able to take the account over for good.
    if not password:
        raise InvalidError("current_password is required to set a new password")
    async with pool.acquire() as conn:
        stored = await repo.get_password_hash(conn, user_id=user_id)
    if stored is None:
        raise NotFoundError(f"user {user_id} not found")
    try:
        await _argon2(_hasher.verify, stored, password)
    except (VerifyMismatchError, InvalidHashError) as exc:
        raise ForbiddenError("current_password is wrong") from exc


async def delete_user(*, pool: asyncpg.Pool, user_id: int) -> None:
    """Delete a user and (by cascade) their memberships."""
    async with pool.acquire() as conn:
        if not await repo.delete_user(conn, user_id=user_id):
            raise NotFoundError(f"user {user_id} not found")


async def verify_credentials(*, pool: asyncpg.Pool, email: str, password: str) -> UserRead | None:
    """The user if the password matches; the hash is compared here and never leaves."""
    async with pool.acquire() as conn:
        row = await repo.get_login(conn, email=email)
    stored = row["password_hash"] if row else _DUMMY_HASH
    try:
        await _argon2(_hasher.verify, stored, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    if row is None:
        return None
    return await get_user(pool=pool, user_id=row["id"])


async def create_group(*, pool: asyncpg.Pool, data: GroupCreate) -> GroupRead:
    """Create a study group."""
    async with pool.acquire() as conn:
        row = await repo.insert_group(
            conn,
            name=data.name,
            course_code=data.course_code,
            trace_context=current_traceparent(),
        )
    return GroupRead(**dict(row))


async def get_group(*, pool: asyncpg.Pool, group_id: int) -> GroupRead:
    """One group with its member count, or 404."""
    async with pool.acquire() as conn:
        row = await repo.get_group(conn, group_id=group_id)
    if row is None:
        raise NotFoundError(f"group {group_id} not found")
    return GroupRead(**dict(row))


async def get_groups(*, pool: asyncpg.Pool, ids: list[int]) -> list[GroupRead]:
    """The groups among `ids` that exist."""
    async with pool.acquire() as conn:
        rows = await repo.get_groups(conn, ids=ids)
    return [GroupRead(**dict(r)) for r in rows]


async def list_groups(*, pool: asyncpg.Pool, after: int, limit: int) -> Page[GroupRead]:
    """Groups by id, keyset-paginated."""
    async with pool.acquire() as conn:
        rows = await repo.list_groups(conn, after=after, limit=limit)
    items = [GroupRead(**dict(r)) for r in rows]
    return Page[GroupRead](items=items, next_after=items[-1].id if len(items) == limit else None)


async def join_group(
    *, pool: asyncpg.Pool, group_id: int, data: MembershipCreate
) -> MembershipRead:
    """Add a member; 409 if already one, 404 for an unknown user or group."""
    try:
        async with pool.acquire() as conn:
            row = await repo.insert_membership(
                conn,
                user_id=data.user_id,
                group_id=group_id,
                role=data.role,
                trace_context=current_traceparent(),
            )
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError(f"user {data.user_id} is already a member of group {group_id}") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        what = "user" if "user_id" in (exc.constraint_name or "") else "group"
        missing = data.user_id if what == "user" else group_id
        raise NotFoundError(f"{what} {missing} not found") from exc
    return MembershipRead(**dict(row))


async def leave_group(*, pool: asyncpg.Pool, group_id: int, user_id: int) -> None:
    """Remove a membership, or 404."""
    async with pool.acquire() as conn:
        if not await repo.delete_membership(conn, user_id=user_id, group_id=group_id):
            raise NotFoundError(f"user {user_id} is not a member of group {group_id}")


async def get_membership(*, pool: asyncpg.Pool, group_id: int, user_id: int) -> MembershipRead:
    """The membership, or 404 (the documents service asks this before a post)."""
    async with pool.acquire() as conn:
        row = await repo.get_membership(conn, user_id=user_id, group_id=group_id)
    if row is None:
        raise NotFoundError(f"user {user_id} is not a member of group {group_id}")
    return MembershipRead(**dict(row))


async def group_members(*, pool: asyncpg.Pool, group_id: int) -> list[MembershipRead]:
    """Members of a group (404 for an unknown group)."""
    await get_group(pool=pool, group_id=group_id)
    async with pool.acquire() as conn:
        rows = await repo.group_members(conn, group_id=group_id)
    return [MembershipRead(**dict(r)) for r in rows]


async def user_groups(*, pool: asyncpg.Pool, user_id: int) -> list[MembershipRead]:
    """Groups a user belongs to (404 for an unknown user)."""
    await get_user(pool=pool, user_id=user_id)
    async with pool.acquire() as conn:
        rows = await repo.user_groups(conn, user_id=user_id)
    return [MembershipRead(**dict(r)) for r in rows]
