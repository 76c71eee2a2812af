"""Membership facts the documents service keeps from the CDC topic, seen from outside: with
the users service unreachable, a member it has read from the topic can still post, and
anyone else gets the 503 of the live question it falls back to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from docs_support import EventTail, Instance, Member, free_port, new_post

pytestmark = pytest.mark.integration


async def post_status(http: httpx.AsyncClient, instance: Instance, member: Member) -> int:
    r = await http.post(
        f"{instance.url}/groups/{member.group_id}/posts", json=new_post(member.user_id)
    )
    assert r.status_code in (201, 403, 503), r.text
    return r.status_code


async def until_status(
    http: httpx.AsyncClient, instance: Instance, member: Member, wanted: int
) -> None:
    # Bounded polling: the change reaches the instance through Debezium and Kafka.
    deadline = time.monotonic() + 45
    while (status := await post_status(http, instance, member)) != wanted:
        assert time.monotonic() < deadline, f"still {status}, wanted {wanted}"
        await asyncio.sleep(0.3)


async def test_members_read_from_cdc_post_without_the_users_service(
    http: httpx.AsyncClient,
    users_url: str,
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
    start_instance: Callable[..., Awaitable[Instance]],
) -> None:
    # This instance cannot reach the users service at all.
    instance = await start_instance(
        users_port=str(free_port()), docs_db_name=scratch_db, docs_events_topic=scratch_topic[0]
    )
    await until_status(http, instance, member, 201)

    # Someone who is not a member is asked live, which fails while the users service is away.
    outsider = await make_member()
    assert await post_status(http, instance, Member(outsider.user_id, member.group_id)) == 503

    # A membership removed in the users service stops counting here once its change arrives.
    r = await http.delete(f"{users_url}/groups/{member.group_id}/members/{member.user_id}")
    assert r.status_code in (200, 204), r.text
    await until_status(http, instance, member, 503)
