"""The documents service over HTTP against the running stack (FerretDB, users service)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from docs_support import EventTail, Instance, Member, free_port, new_post
from pymongo import AsyncMongoClient

from campus_documents.config import Settings

pytestmark = pytest.mark.integration

LINK = {"type": "link", "url": "https://a.org"}


async def create(
    http: httpx.AsyncClient, docs_url: str, member: Member, **extra: Any
) -> dict[str, Any]:
    r = await http.post(
        f"{docs_url}/groups/{member.group_id}/posts", json=new_post(member.user_id, **extra)
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# create / read -------------------------------------------------------------------------------


async def test_a_member_posts_in_the_group_and_reads_it_back(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    post = await create(http, docs_url, member)
    assert post["group_id"] == member.group_id and post["author_id"] == member.user_id
    assert post["tags"] == ["cs-450", "indexes"]
    assert [a["type"] for a in post["attachments"]] == ["link", "image"]
    assert post["meta"] == {"likes": 0} and post["schema_version"] == 1
    assert post["created_at"] == post["updated_at"]
    r = await http.get(f"{docs_url}/posts/{post['id']}")
    assert r.status_code == 200 and r.json() == post
    assert not {"outbox", "pending", "liked_by", "idempotency_key"} & set(r.json())


async def test_a_non_member_is_refused_with_403(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    outsider = await make_member()  # a member of another group only
    r = await http.post(
        f"{docs_url}/groups/{member.group_id}/posts", json=new_post(outsider.user_id)
    )
    assert r.status_code == 403
    assert r.json() == {"detail": "User is not a member of this group"}
    r = await http.post(f"{docs_url}/groups/999999999/posts", json=new_post(member.user_id))
    assert r.status_code == 403


async def test_someone_who_just_joined_can_post_at_once(
    http: httpx.AsyncClient,
    docs_url: str,
    users_url: str,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    first = await make_member()
    newcomer = await make_member(first.group_id)  # joined a moment ago, no projection involved
    r = await http.post(
        f"{docs_url}/groups/{first.group_id}/posts", json=new_post(newcomer.user_id)
    )
    assert r.status_code == 201, r.text


async def test_the_flat_api_with_and_without_a_group(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    r = await http.post(f"{docs_url}/posts", json=new_post(member.user_id))
    assert r.status_code == 201 and r.json()["group_id"] is None
    r = await http.post(
        f"{docs_url}/posts", json=new_post(member.user_id, group_id=member.group_id)
    )
    assert r.status_code == 201 and r.json()["group_id"] == member.group_id
    outsider = await make_member()
    r = await http.post(
        f"{docs_url}/posts", json=new_post(outsider.user_id, group_id=member.group_id)
    )
    assert r.status_code == 403 and r.json()["detail"] == "User is not a member of this group"
    r = await http.post(f"{docs_url}/posts", json=new_post(2**62))
    assert r.status_code == 422 and "does not exist" in r.json()["detail"]


async def test_list_posts_filters_by_author_group_and_tag(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    other = await make_member(member.group_id)
    tag = f"t-{uuid.uuid4().hex[:8]}"
    mine = await create(http, docs_url, member, tags=[tag.upper()])
    theirs = await create(http, docs_url, other, tags=[tag])
    await create(http, docs_url, member)

    async def ids(**params: Any) -> list[str]:
        r = await http.get(f"{docs_url}/posts", params=params)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await ids(tag=tag) == [theirs["id"], mine["id"]]
    assert await ids(tag=tag, author_id=member.user_id) == [mine["id"]]
    assert await ids(tag=tag, group_id=member.group_id, author_id=other.user_id) == [theirs["id"]]
    assert len(await ids(group_id=member.group_id)) == 3


# bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"$set": {"author_id": 1}},
        {"title": {"$gt": ""}},
        {"attachments": [{"type": "link", "url": "https://a.org", "$where": "sleep(1000)"}]},
        {"tags": ["ok"], "meta": {"likes.count": 5}},
    ],
)
async def test_operator_or_dotted_field_names_anywhere_are_a_422(
    http: httpx.AsyncClient, docs_url: str, member: Member, body: dict[str, Any]
) -> None:
    r = await http.post(
        f"{docs_url}/groups/{member.group_id}/posts", json=new_post(member.user_id) | body
    )
    assert r.status_code == 422
    assert "must not start with '$' or contain '.'" in r.text
    r = await http.get(f"{docs_url}/posts", params={"author_id": member.user_id})
    assert r.json()["items"] == []  # nothing was stored


async def test_operator_names_in_updates_and_comments_are_a_422(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    post = await create(http, docs_url, member)
    headers = {"X-User-Id": str(member.user_id)}
    r = await http.put(
        f"{docs_url}/posts/{post['id']}", json={"$set": {"author_id": 1}}, headers=headers
    )
    assert r.status_code == 422
    r = await http.post(
        f"{docs_url}/posts/{post['id']}/comments",
        json={"author_id": member.user_id, "body": "x", "x": {"$ne": None}},
    )
    assert r.status_code == 422
    r = await http.get(f"{docs_url}/posts", params={"author_id[$ne]": 0, "tag": "$where"})
    assert r.status_code == 200  # unknown params are ignored; a `$` tag is a plain string value


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ({"title": "x" * 201}, "title", "at most 200 characters"),
        ({"body": "x" * 20_001}, "body", "at most 20000 characters"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags", "at most 20 items"),
        (
            {"attachments": [{"type": "link", "url": "https://a.org"}] * 11},
            "attachments",
            "at most 10",
        ),
        (
            {"attachments": [{"type": "video", "url": "https://a.org"}]},
            "attachments",
            "'link', 'file' or 'image'",
        ),
        (
            {"attachments": [{"type": "file", "url": "file:///etc/passwd"}]},
            "attachments",
            "'http' or 'https'",
        ),
    ],
)
async def test_limits_are_a_422_naming_the_field(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    extra: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    r = await http.post(
        f"{docs_url}/groups/{member.group_id}/posts", json=new_post(member.user_id, **extra)
    )
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert errors[0]["loc"][:2] == ["body", field]
    assert fragment in errors[0]["msg"]


@pytest.mark.parametrize("bad_id", ["nope", "123", "zzzzzzzzzzzzzzzzzzzzzzzz", str(ObjectId())])
async def test_an_invalid_or_unknown_id_is_a_404(
    http: httpx.AsyncClient, docs_url: str, member: Member, bad_id: str
) -> None:
    who = {"X-User-Id": str(member.user_id)}
    calls = [
        http.get(f"{docs_url}/posts/{bad_id}"),
        http.put(f"{docs_url}/posts/{bad_id}", json={"title": "x"}, headers=who),
        http.delete(f"{docs_url}/posts/{bad_id}", headers=who),
        http.post(f"{docs_url}/posts/{bad_id}/like", json={"user_id": member.user_id}),
        http.post(
            f"{docs_url}/posts/{bad_id}/comments", json={"author_id": member.user_id, "body": "x"}
        ),
        http.get(f"{docs_url}/posts/{bad_id}/comments"),
    ]
    for r in await asyncio.gather(*calls):
        assert r.status_code == 404, (r.request.method, r.request.url, r.text)
        assert "not found" in r.json()["detail"]


# the feed ------------------------------------------------------------------------------------


async def test_feed_pages_newest_first_without_gaps_or_repeats(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    created = [await create(http, docs_url, member) for _ in range(7)]
    await create(http, docs_url, await make_member())  # another group: never in this feed
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await http.get(f"{docs_url}/groups/{member.group_id}/posts/feed", params=params)
        assert r.status_code == 200, r.text
        pages.append([p["id"] for p in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == [p["id"] for p in reversed(created)]


async def test_feed_ties_on_created_at_are_ordered_by_id(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    # Concurrent posts often share a millisecond; the cursor must still not lose any.
    created = await asyncio.gather(*(create(http, docs_url, member) for _ in range(10)))
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        r = await http.get(f"{docs_url}/groups/{member.group_id}/posts/feed", params=params)
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
    assert cursor is None
    keys = [(p["created_at"], p["id"]) for p in seen]
    assert keys == sorted(keys, reverse=True)
    assert {p["id"] for p in seen} == {p["id"] for p in created}


async def test_a_forged_cursor_is_a_422(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    for cursor in ["garbage", "eyIkbmUiOiAxfQ", "MTIzLmFiYw"]:
        r = await http.get(
            f"{docs_url}/groups/{member.group_id}/posts/feed", params={"cursor": cursor}
        )
        assert r.status_code == 422 and "invalid cursor" in r.json()["detail"]


# edit / delete -------------------------------------------------------------------------------


async def test_only_the_author_edits_and_deletes(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    post = await create(http, docs_url, member)
    other = await make_member(member.group_id)
    url = f"{docs_url}/posts/{post['id']}"
    r = await http.put(url, json={"title": "mine now"}, headers={"X-User-Id": str(other.user_id)})
    assert r.status_code == 403
    # A service token acting for no user cannot edit anyone's post.
    r = await http.put(url, json={"title": "no acting user"})
    assert r.status_code == 403
    r = await http.put(
        url, json={"title": "Edited", "tags": ["Exam"]}, headers={"X-User-Id": str(member.user_id)}
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["title"], edited["tags"], edited["body"]) == ("Edited", ["exam"], post["body"])
    assert edited["updated_at"] > post["updated_at"] and edited["created_at"] == post["created_at"]
    assert (await http.get(url)).json() == edited

    assert (await http.delete(url, headers={"X-User-Id": str(other.user_id)})).status_code == 403
    assert (await http.delete(url, headers={"X-User-Id": str(member.user_id)})).status_code == 204
    assert (await http.get(url)).status_code == 404
    assert (await http.delete(url, headers={"X-User-Id": str(member.user_id)})).status_code == 404
    feed = await http.get(f"{docs_url}/groups/{member.group_id}/posts/feed")
    assert post["id"] not in [p["id"] for p in feed.json()["items"]]


# likes ---------------------------------------------------------------------------------------


async def test_liking_twice_is_one_like(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    post = await create(http, docs_url, member)
    fan = await make_member(member.group_id)
    url = f"{docs_url}/posts/{post['id']}/like"
    first = await http.post(url, json={"user_id": fan.user_id})
    again = await http.post(url, json={"user_id": fan.user_id})
    assert first.status_code == again.status_code == 200
    assert (first.json()["liked"], first.json()["likes"]) == (True, 1)
    assert (again.json()["liked"], again.json()["likes"]) == (False, 1)
    by_header = await http.post(url, headers={"X-User-Id": str(member.user_id)})
    assert by_header.json()["likes"] == 2
    assert (await http.get(f"{docs_url}/posts/{post['id']}")).json()["meta"]["likes"] == 2
    nobody = await http.post(url)
    assert nobody.status_code == 422 and "user_id" in nobody.json()["detail"]


async def test_concurrent_likes_are_all_counted_once(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    # Each like is an insert under a unique (post, user) key, never an update of the post
    # (FerretDB v1 updates are read-modify-write and could lose some): none lost, none twice.
    # A post in no group, so that made-up likers need no membership.
    r = await http.post(f"{docs_url}/posts", json=new_post(member.user_id))
    assert r.status_code == 201, r.text
    post = r.json()
    url = f"{docs_url}/posts/{post['id']}/like"
    users = list(range(10_000_001, 10_000_021))
    replies = await asyncio.gather(
        *(http.post(url, json={"user_id": u}) for u in users for _ in range(2))
    )
    assert all(r.status_code == 200 for r in replies)
    assert sum(r.json()["liked"] for r in replies) == len(users)
    assert (await http.get(f"{docs_url}/posts/{post['id']}")).json()["meta"]["likes"] == len(users)


# comments ------------------------------------------------------------------------------------


async def test_comments_are_listed_oldest_first_in_pages(
    http: httpx.AsyncClient, docs_url: str, member: Member
) -> None:
    post = await create(http, docs_url, member)
    url = f"{docs_url}/posts/{post['id']}/comments"
    bodies = [f"comment {i}" for i in range(5)]
    for body in bodies:
        r = await http.post(url, json={"author_id": member.user_id, "body": body})
        assert r.status_code == 201, r.text
        assert r.json()["post_id"] == post["id"]
    first = await http.get(url, params={"limit": 3})
    assert [c["body"] for c in first.json()["items"]] == bodies[:3]
    rest = await http.get(url, params={"limit": 3, "cursor": first.json()["next_cursor"]})
    assert [c["body"] for c in rest.json()["items"]] == bodies[3:]
    assert rest.json()["next_cursor"] is None
    r = await http.post(url, json={"author_id": member.user_id, "body": ""})
    assert r.status_code == 422


# Idempotency-Key -----------------------------------------------------------------------------


async def test_a_retried_post_returns_the_first_and_creates_nothing(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    mongo: AsyncMongoClient[Any],
    docs_settings: Settings,
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = new_post(member.user_id)
    url = f"{docs_url}/groups/{member.group_id}/posts"
    first = await http.post(url, json=body, headers=key)
    retry = await http.post(url, json=body, headers=key)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    # Retries racing each other still make one post.
    racing = await asyncio.gather(*(http.post(url, json=body, headers=key) for _ in range(5)))
    assert {r.json()["id"] for r in racing} == {first.json()["id"]}
    posts = mongo[docs_settings.docs_db_name]["posts"]
    assert await posts.count_documents({"author_id": member.user_id}) == 1

    changed = await http.post(url, json=body | {"title": "something else"}, headers=key)
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()["detail"]


async def test_idempotency_keys_are_per_user_and_work_for_comments(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
) -> None:
    other = await make_member(member.group_id)
    key = {"Idempotency-Key": "same-key-for-two-users"}
    url = f"{docs_url}/groups/{member.group_id}/posts"
    a = await http.post(url, json=new_post(member.user_id), headers=key)
    b = await http.post(url, json=new_post(other.user_id), headers=key)
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]

    comments = f"{docs_url}/posts/{a.json()['id']}/comments"
    body = {"author_id": other.user_id, "body": "Great question"}
    c1 = await http.post(comments, json=body, headers={"Idempotency-Key": "c-1"})
    c2 = await http.post(comments, json=body, headers={"Idempotency-Key": "c-1"})
    assert c1.json() == c2.json() and c2.headers.get("Idempotent-Replayed") == "true"
    assert len((await http.get(comments)).json()["items"]) == 1


# failure of a dependency ---------------------------------------------------------------------


async def test_users_service_down_is_a_503_not_a_guess(
    http: httpx.AsyncClient,
    member: Member,
    start_instance: Callable[..., Awaitable[Instance]],
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
) -> None:

    instance = await start_instance(
        users_port=str(free_port()), docs_db_name=scratch_db, docs_events_topic=scratch_topic[0]
    )
    # A membership the instance has not read from the CDC topic is asked live (a member it
    # already knows posts without the users service: test_documents_memberships.py).
    r = await http.post(f"{instance.url}/groups/{member.group_id}/posts", json=new_post(2**62 - 7))
    assert r.status_code == 503 and "users service" in r.json()["detail"]
    r = await http.post(f"{instance.url}/posts", json=new_post(member.user_id))
    assert r.status_code == 503 and "users service" in r.json()["detail"]
