"""SQL against the `campus` database; the only module that touches it."""

from __future__ import annotations

from typing import Any

import asyncpg

USER_COLS = "id, email::text AS email, full_name, created_at, updated_at"


async def insert_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    full_name: str,
    password_hash: str,
    trace_context: str | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO users (email, full_name, password_hash, trace_context) "
        f"VALUES ($1, $2, $3, $4) RETURNING {USER_COLS}",
        email,
        full_name,
        password_hash,
        trace_context,
    )


async def get_user(conn: asyncpg.Connection, *, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLS} FROM users WHERE id = $1", user_id)


async def get_users(conn: asyncpg.Connection, *, ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {USER_COLS} FROM users WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )


async def get_login(conn: asyncpg.Connection, *, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, password_hash FROM users WHERE email = $1", email)


async def get_password_hash(conn: asyncpg.Connection, *, user_id: int) -> str | None:
    return await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)


async def list_users(conn: asyncpg.Connection, *, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {USER_COLS} FROM users WHERE id > $1 ORDER BY id LIMIT $2", after, limit
    )


async def update_user(
    conn: asyncpg.Connection, *, user_id: int, changes: dict[str, Any], trace_context: str | None
) -> asyncpg.Record | None:
    # Column names come from a fixed allow-list below, values are always bind parameters.
    allowed = {"email", "full_name", "password_hash"}
    cols = [c for c in changes if c in allowed]
    sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(cols))
    sets = f"{sets}, " if sets else ""
    sql = (
        f"UPDATE users SET {sets}updated_at = now(), trace_context = $2 WHERE id = $1 "
        f"RETURNING {USER_COLS}"
    )
    return await conn.fetchrow(sql, user_id, trace_context, *(changes[c] for c in cols))


async def delete_user(conn: asyncpg.Connection, *, user_id: int) -> bool:
    return await conn.fetchval("DELETE FROM users WHERE id = $1 RETURNING id", user_id) is not None


GROUP_SELECT = """
SELECT g.id, g.name, g.course_code, g.created_at,
       (SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id) AS member_count
FROM groups g
"""


async def insert_group(
    conn: asyncpg.Connection, *, name: str, course_code: str, trace_context: str | None
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO groups (name, course_code, trace_context) VALUES ($1, $2, $3) "
        "RETURNING id, name, course_code, created_at, 0 AS member_count",
        name,
        course_code,
        trace_context,
    )


async def get_group(conn: asyncpg.Connection, *, group_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GROUP_SELECT + "WHERE g.id = $1", group_id)


async def get_groups(conn: asyncpg.Connection, *, ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(GROUP_SELECT + "WHERE g.id = ANY($1::bigint[]) ORDER BY g.id", ids)


async def list_groups(conn: asyncpg.Connection, *, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(GROUP_SELECT + "WHERE g.id > $1 ORDER BY g.id LIMIT $2", after, limit)


async def insert_membership(
    conn: asyncpg.Connection, *, user_id: int, group_id: int, role: str, trace_context: str | None
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO group_memberships (user_id, group_id, role, trace_context) "
        "VALUES ($1, $2, $3, $4) RETURNING user_id, group_id, role, joined_at",
        user_id,
        group_id,
        role,
        trace_context,
    )


async def delete_membership(conn: asyncpg.Connection, *, user_id: int, group_id: int) -> bool:
    row = await conn.fetchval(
        "DELETE FROM group_memberships WHERE user_id = $1 AND group_id = $2 RETURNING user_id",
        user_id,
        group_id,
    )
    return row is not None


async def get_membership(
    conn: asyncpg.Connection, *, user_id: int, group_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT user_id, group_id, role, joined_at FROM group_memberships "
        "WHERE user_id = $1 AND group_id = $2",
        user_id,
        group_id,
    )


async def group_members(conn: asyncpg.Connection, *, group_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT user_id, group_id, role, joined_at FROM group_memberships "
        "WHERE group_id = $1 ORDER BY joined_at, user_id",
        group_id,
    )


async def user_groups(conn: asyncpg.Connection, *, user_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT user_id, group_id, role, joined_at FROM group_memberships "
        "WHERE user_id = $1 ORDER BY joined_at, group_id",
        user_id,
    )
