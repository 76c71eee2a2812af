"""Helpers shared by the documents integration tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from campus_common.config import KafkaConfig
from campus_common.events import Event
from campus_common.kafka import topic_partitions
from tests.helpers import unique_email


@dataclass(frozen=True)
class Member:
    user_id: int
    group_id: int


async def new_user(http: httpx.AsyncClient, users_url: str) -> int:
    r = await http.post(
        f"{users_url}/users",
        json={"email": unique_email("docs"), "full_name": "Docs Tester", "password": "s3cret-pass"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def new_group(http: httpx.AsyncClient, users_url: str) -> int:
    r = await http.post(
        f"{users_url}/groups",
        json={"name": f"docs-{uuid.uuid4().hex[:8]}", "course_code": "CS-450"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def join(http: httpx.AsyncClient, users_url: str, *, user_id: int, group_id: int) -> None:
    r = await http.post(f"{users_url}/groups/{group_id}/members", json={"user_id": user_id})
    assert r.status_code == 201, r.text


# A post's content, for posts written straight into the database (`service.stored_post`).
NOTE: dict[str, Any] = {"type": "note", "title": "", "body": "", "tags": [], "attachments": []}


def new_post(author_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "author_id": author_id,
        "type": "question",
        "title": f"Why B-trees? {uuid.uuid4().hex[:6]}",
        "body": "Hash indexes look faster on paper.",
        "tags": ["CS-450", "indexes"],
        "attachments": [
            {"type": "link", "url": "https://www.postgresql.org/docs/", "title": "docs"},
            {"type": "image", "url": "https://files.campus.edu/plan.png", "title": "plan"},
        ],
    } | extra


@asynccontextmanager
async def open_tail(
    kafka: KafkaConfig, topic: str, *, from_start: bool
) -> AsyncIterator[EventTail]:
    """An EventTail of every partition of `topic`, from its start or from its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(kafka, [topic])
        consumer.assign(partitions)
        if from_start:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
            # Resolve the end offsets now: what is published from here on is read.
            for tp in partitions:
                await consumer.position(tp)
        yield EventTail(consumer)
    finally:
        await consumer.stop()


class EventTail:
    """Reads campus.documents.events from the end offsets it saw when it started."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[Event] = []

    async def _poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.seen.extend(Event.from_bytes(r.value) for r in records if r.value is not None)

    async def wait_for(
        self,
        match: Callable[[Event], bool],
        *,
        count: int = 1,
        timeout: float = 20.0,
        settle: float = 0.0,
    ) -> list[Event]:
        """The matching events once `count` arrived, after `settle` more seconds for extras."""
        deadline = time.monotonic() + timeout
        while len([e for e in self.seen if match(e)]) < count:
            if time.monotonic() > deadline:
                found = [e for e in self.seen if match(e)]
                raise AssertionError(f"{len(found)} of {count} events within {timeout}s: {found}")
            await self._poll()
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            await self._poll()
        return [e for e in self.seen if match(e)]


def about(post_id: str, event_type: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.payload.get("post_id") == post_id and (event_type is None or e.type == event_type)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    """The documents service running in a process of its own."""

    url: str
    process: asyncio.subprocess.Process

    async def crash(self) -> None:
        """SIGKILL: no lifespan shutdown, no flush: what a power cut looks like."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.crash()


# many writers on one post -------------------------------------------------------------------


@dataclass
class Hammered:
    """What the clients were told while many writers hit one post through several instances."""

    post_id: str
    author_id: int
    group_id: int
    likers: list[int]
    liked: dict[int, list[bool]] = field(default_factory=dict)  # liker -> every `liked` answer
    comment_ids: list[str] = field(default_factory=list)
    edit_titles: list[str] = field(default_factory=list)  # acknowledged edits
    failures: list[str] = field(default_factory=list)


async def hammer_one_post(
    http: httpx.AsyncClient,
    urls: list[str],
    *,
    users_url: str,
    likers: int = 24,
    comments: int = 24,
    edits: int = 8,
) -> Hammered:
    """One post, then at once: every liker likes it on every instance, `comments` comments and
    `edits` edits by the author, spread over the instances (`urls`) in a shuffled order."""
    gid = await new_group(http, users_url)
    author = await new_user(http, users_url)
    await join(http, users_url, user_id=author, group_id=gid)
    # One at a time: the users service hashes at most two passwords at once (else 429).
    people = [await new_user(http, users_url) for _ in range(likers)]
    await asyncio.gather(*(join(http, users_url, user_id=uid, group_id=gid) for uid in people))
    r = await http.post(f"{urls[0]}/groups/{gid}/posts", json=new_post(author))
    assert r.status_code == 201, r.text
    out = Hammered(r.json()["id"], author, gid, people)
    pid = out.post_id

    async def like(url: str, uid: int) -> None:
        r = await http.post(f"{url}/posts/{pid}/like", json={"user_id": uid})
        if r.status_code != 200:
            out.failures.append(f"like {uid}: {r.status_code} {r.text}")
            return
        out.liked.setdefault(uid, []).append(bool(r.json()["liked"]))

    async def comment(url: str, i: int) -> None:
        uid = people[i % len(people)]
        r = await http.post(
            f"{url}/posts/{pid}/comments", json={"author_id": uid, "body": f"comment {i}"}
        )
        if r.status_code != 201:
            out.failures.append(f"comment {i}: {r.status_code} {r.text}")
            return
        out.comment_ids.append(r.json()["id"])

    async def edit(url: str, i: int) -> None:
        title = f"edit {i} {uuid.uuid4().hex[:6]}"
        for _ in range(5):
            r = await http.put(
                f"{url}/posts/{pid}", json={"title": title}, headers={"X-User-Id": str(author)}
            )
            # 503: the post's lease stayed busy longer than the service waits (a loaded host);
            # nothing was written, the client is told to try again, as this one does.
            if r.status_code != 503:
                break
        if r.status_code != 200:
            out.failures.append(f"edit {i}: {r.status_code} {r.text}")
            return
        out.edit_titles.append(title)

    writes = [like(url, uid) for uid in people for url in urls]
    writes += [comment(urls[i % len(urls)], i) for i in range(comments)]
    writes += [edit(urls[i % len(urls)], i) for i in range(edits)]
    random.shuffle(writes)
    await asyncio.gather(*writes)
    return out


async def check_hammered(
    http: httpx.AsyncClient, urls: list[str], h: Hammered, events: EventTail
) -> int:
    """Every acknowledged like, comment and edit is stored once and published once, on every
    instance's reading: the like count is the number of likers, no edit is lost. Returns how
    many records repeated an event id already sent."""
    assert h.failures == [], h.failures[:10]
    # Each liker asked every instance: exactly one of its answers added the like.
    assert {uid: answers.count(True) for uid, answers in h.liked.items()} == dict.fromkeys(
        h.likers, 1
    )
    pid = h.post_id
    expected = {
        "post.liked": len(h.likers),
        "comment.created": len(h.comment_ids),
        "post.updated": len(h.edit_titles),
    }
    for kind, count in expected.items():
        await events.wait_for(about(pid, kind), count=count, timeout=60)
    await events.wait_for(about(pid), settle=3.0)  # time for an event sent twice to show
    liked, commented, updated = (
        [e for e in events.seen if about(pid, kind)(e)] for kind in expected
    )
    # Exactly one event per like, comment and edit: none lost, none made twice. (A record the
    # relay sent again after a failed send carries the same event id: projections skip it.)
    assert _ids_per(liked, "user_id") == {str(uid): 1 for uid in h.likers}
    assert _ids_per(commented, "comment_id") == dict.fromkeys(h.comment_ids, 1)
    assert _ids_per(updated, "title") == dict.fromkeys(h.edit_titles, 1)
    # The stored post is the last edit the stream carries (one partition per post), counting
    # each event where it first appeared.
    first_seen = list(dict.fromkeys(str(e.id) for e in updated))
    last_edit = {str(e.id): str(e.payload["title"]) for e in updated}[first_seen[-1]]
    for url in urls:
        post = (await http.get(f"{url}/posts/{pid}")).json()
        assert post["meta"]["likes"] == len(h.likers), url
        assert post["title"] == last_edit, url
        feed = (await http.get(f"{url}/groups/{h.group_id}/posts/feed")).json()
        assert [p["meta"]["likes"] for p in feed["items"] if p["id"] == pid] == [len(h.likers)]
        listed = (await http.get(f"{url}/posts/{pid}/comments", params={"limit": 100})).json()
        assert sorted(c["id"] for c in listed["items"]) == sorted(h.comment_ids), url
    # Records sent again under an id already sent (after a failed send), for the report.
    return (
        len(liked)
        + len(commented)
        + len(updated)
        - len({e.id for e in liked + commented + updated})
    )


def _ids_per(events: list[Event], field: str) -> dict[str, int]:
    """How many distinct event ids each value of a payload field has."""
    ids: dict[str, set[str]] = {}
    for e in events:
        ids.setdefault(str(e.payload[field]), set()).add(str(e.id))
    return {value: len(found) for value, found in ids.items()}
