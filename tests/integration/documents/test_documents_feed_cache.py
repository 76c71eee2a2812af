"""The feed cache on real instances: it serves what FerretDB holds, the instance that took a write
shows it at once, another instance once the event arrives, and no follower means no cache."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from docs_support import NOTE, EventTail, Instance, Member, free_port, new_post
from pymongo import AsyncMongoClient

from campus_documents import service
from campus_documents.schemas import Page, PostRead
from campus_documents.service import Store
from tests.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Long enough that only an event can make the second instance drop a page during a test.
NO_TTL = {"feed_cache_ttl_s": "3600"}


async def feed(
    http: httpx.AsyncClient, instance: Instance, group_id: int, **params: Any
) -> tuple[Page[PostRead], str]:
    r = await http.get(f"{instance.url}/groups/{group_id}/posts/feed", params=params)
    assert r.status_code == 200, r.text
    return Page[PostRead].model_validate(r.json()), r.headers["X-Cache"]


async def served_from_cache(
    http: httpx.AsyncClient, instance: Instance, group_id: int, **params: Any
) -> Page[PostRead]:
    """The page once the instance serves it from its cache (its follower may still be starting)."""

    async def ask() -> tuple[Page[PostRead], str]:
        return await feed(http, instance, group_id, **params)

    page, _ = await eventually(ask, until=lambda got: got[1] == "hit", timeout=30)
    return page


async def from_store(db: Any, group_id: int, limit: int = 20) -> Page[PostRead]:
    """The same page read straight from FerretDB (no cache)."""
    page, outcome = await service.list_posts(
        store=Store(db=db), group_id=group_id, limit=limit, cursor=None
    )
    assert outcome == "bypass"
    return page


def ids(page: Page[PostRead]) -> list[str]:
    return [p.id for p in page.items]


async def test_a_write_shows_at_once_where_it_was_made_and_elsewhere_once_its_event_arrives(
    http: httpx.AsyncClient,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
    start_instance: Callable[..., Awaitable[Instance]],
    mongo: AsyncMongoClient[Any],
) -> None:
    topic, _ = scratch_topic
    a, b = [
        await start_instance(docs_db_name=scratch_db, docs_events_topic=topic, **NO_TTL)
        for _ in range(2)
    ]
    db, gid, author = mongo[scratch_db], member.group_id, member.user_id
    fan = await make_member(gid)
    posted = []
    for _ in range(3):
        r = await http.post(f"{a.url}/groups/{gid}/posts", json=new_post(author))
        assert r.status_code == 201, r.text
        posted.append(r.json()["id"])
    r = await http.post(f"{a.url}/posts/{posted[0]}/like", json={"user_id": fan.user_id})
    assert r.status_code == 200, r.text

    # What the cache serves is what FerretDB holds, a shorter page and its cursor included.
    for instance in (a, b):
        assert await served_from_cache(http, instance, gid) == await from_store(db, gid)
    short = await served_from_cache(http, a, gid, limit=2)
    assert short == await from_store(db, gid, limit=2) and short.next_cursor is not None
    rest, outcome = await feed(http, a, gid, cursor=short.next_cursor)
    assert (ids(short) + ids(rest), outcome) == (posted[::-1], "bypass")

    async def on_b() -> Page[PostRead]:
        return (await feed(http, b, gid))[0]

    # A new post: on A at once (no wait), on B once post.created has reached it.
    r = await http.post(f"{a.url}/groups/{gid}/posts", json=new_post(author))
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    assert ids((await feed(http, a, gid))[0])[0] == new
    await eventually(on_b, until=lambda page: ids(page)[:1] == [new], timeout=30)

    # A like (the count is in the feed item), then an edit, each made on B this time.
    r = await http.post(f"{b.url}/posts/{new}/like", json={"user_id": fan.user_id})
    assert r.status_code == 200 and r.json()["liked"], r.text
    liked = (await feed(http, b, gid))[0]
    assert liked.items[0].meta.likes == 1
    await served_from_cache(http, a, gid)  # A holds the page again before the event comes
    r = await http.put(
        f"{b.url}/posts/{new}", json={"title": "Edited on B"}, headers={"X-User-Id": str(author)}
    )
    assert r.status_code == 200, r.text
    assert (await feed(http, b, gid))[0].items[0].title == "Edited on B"

    async def on_a() -> Page[PostRead]:
        return (await feed(http, a, gid))[0]

    await eventually(
        on_a,
        until=lambda page: (page.items[0].title, page.items[0].meta.likes) == ("Edited on B", 1),
        timeout=30,
    )

    # A delete on A: gone from A at once, from B once post.deleted arrives.
    await served_from_cache(http, b, gid)
    r = await http.delete(f"{a.url}/posts/{new}", headers={"X-User-Id": str(author)})
    assert r.status_code == 204, r.text
    assert new not in ids((await feed(http, a, gid))[0])
    await eventually(on_b, until=lambda page: new not in ids(page), timeout=30)
    for instance in (a, b):
        assert await served_from_cache(http, instance, gid) == await from_store(db, gid)


@pytest.mark.parametrize("without", ["follower", "cache"])
async def test_without_a_follower_or_with_the_cache_off_every_feed_page_is_read_from_the_store(
    without: str,
    http: httpx.AsyncClient,
    member: Member,
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
    start_instance: Callable[..., Awaitable[Instance]],
    mongo: AsyncMongoClient[Any],
) -> None:
    topic, _ = scratch_topic
    if without == "follower":
        # No broker answers there: the follower never catches up (nor can the relay publish).
        env = {"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"}
    else:
        env = {"docs_events_topic": topic, "feed_cache_enabled": "false"}
    instance = await start_instance(docs_db_name=scratch_db, **env, **NO_TTL)
    gid = member.group_id
    r = await http.post(f"{instance.url}/groups/{gid}/posts", json=new_post(member.user_id))
    assert r.status_code == 201, r.text
    for _ in range(3):
        page, outcome = await feed(http, instance, gid)
        assert (ids(page), outcome) == ([r.json()["id"]], "bypass")
    # A post written straight into the database, which no event announces, shows at once.
    at = datetime.now(UTC)
    oid = ObjectId()
    await mongo[scratch_db].posts.insert_one(
        service.stored_post(
            oid=oid,
            author_id=member.user_id,
            group_id=gid,
            content=NOTE | {"title": "Behind the service's back"},
            at=at,
            idempotency_key=f"direct:{oid}",
            request_hash="direct",
        )
    )
    page, outcome = await feed(http, instance, gid)
    assert (ids(page)[0], outcome) == (str(oid), "bypass")
