"""Posts, comments and likes: the rules, over the repository.

Every write is one single-document write that also carries its event (see outbox.py). Likes
and comments are inserts of their own documents, so any number of instances take them at once
and the like count is derived from the likes; updates of a post hold that post's lease, which
spans instances (see locks.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError

from campus_common.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from campus_documents import repository as repo
from campus_documents.feed import REQUESTS as FEED_REQUESTS
from campus_documents.feed import FeedCache, Outcome, first_items
from campus_documents.locks import UPDATE_SLOTS, Lease, LeaseBusyError, Leases, post_key
from campus_documents.outbox import (
    comment_payload,
    new_event,
    now,
    post_deleted_payload,
    post_liked_payload,
    post_payload,
)
from campus_documents.schemas import (
    CommentCreate,
    CommentRead,
    FlatPostCreate,
    LikeRead,
    Page,
    PostCreate,
    PostRead,
    PostUpdate,
)
from campus_documents.users_client import UsersClient

SCHEMA_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOT_A_MEMBER = "User is not a member of this group"


def _no_wake() -> None:
    pass


@dataclass(frozen=True)
class Store:
    """The database plus what every write needs: the posts' leases, the update slots (shared
    with the relay, see locks.py), the relay's doorbell and the cached feed pages (if on)."""

    db: repo.Db
    update_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(UPDATE_SLOTS))
    wake: Callable[[], None] = _no_wake
    feed: FeedCache | None = None
    leases: Leases = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leases", Leases(self.db, slots=self.update_slots))

    async def update_post(
        self, *, lease: Lease, where: dict[str, Any], update: dict[str, Any]
    ) -> bool:
        """One update command under the post's lease, within the process-wide update limit."""
        async with self.update_slots:
            # A holder stalled this long may have lost its lease to a waiter: do not write.
            if not lease.fresh():
                raise LeaseBusyError("the post was locked too long, try again")
            return await repo.update_post(self.db, where=where, update=update)

    def changed(self, group_id: int | None) -> None:
        """A write to this group's feed is stored: drop its cached page before answering, so
        the writer reads it back at once (other instances learn it from the event)."""
        if self.feed is not None and group_id is not None:
            self.feed.changed(group_id)


# helpers -------------------------------------------------------------------------------------


def parse_id(raw: str, what: str = "post") -> ObjectId:
    """An ObjectId from a path segment; anything else is simply not found."""
    if not ObjectId.is_valid(raw):
        raise NotFoundError(f"{what} {raw!r} not found")
    return ObjectId(raw)


def encode_cursor(at: datetime, oid: ObjectId) -> str:
    """Opaque position after an item in (created_at, _id) order."""
    ms = (at - EPOCH) // timedelta(milliseconds=1)
    return base64.urlsafe_b64encode(f"{ms}.{oid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> repo.Position:
    """The position a cursor stands for; 422 for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, oid = raw.split(".")
        return EPOCH + timedelta(milliseconds=int(ms)), ObjectId(oid)
    except (ValueError, binascii.Error, InvalidId, OverflowError) as exc:
        raise InvalidError("invalid cursor: pass back the next_cursor of a previous page") from exc


def fingerprint(request: dict[str, Any]) -> str:
    """A stable hash of a request body, to tell a retry from a different request."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


def scoped_key(user_id: int, key: str | None) -> str | None:
    # Scoped by user: two users picking the same key must not see each other's posts.
    return None if key is None else f"{user_id}:{key}"


def to_post(doc: dict[str, Any], likes: int = 0) -> PostRead:
    """The API's view of a stored post; `likes` is counted from the likes collection."""
    return PostRead(
        id=str(doc["_id"]),
        author_id=doc["author_id"],
        group_id=doc.get("group_id"),
        type=doc["type"],
        title=doc["title"],
        body=doc.get("body", ""),
        tags=doc.get("tags", []),
        attachments=doc.get("attachments", []),
        meta={**doc.get("meta", {}), "likes": likes},
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        schema_version=doc.get("schema_version", SCHEMA_VERSION),
    )


def to_comment(doc: dict[str, Any]) -> CommentRead:
    return CommentRead(
        id=str(doc["_id"]),
        post_id=str(doc["post_id"]),
        author_id=doc["author_id"],
        body=doc["body"],
        created_at=doc["created_at"],
    )


async def _replayed(
    db: repo.Db, collection: str, key: str | None, request_hash: str
) -> dict[str, Any] | None:
    """The document a previous request with this key created, if any."""
    if key is None:
        return None
    doc: dict[str, Any] | None = await repo.find_by_key(db, collection, key)
    if doc is not None and doc.get("request_hash") != request_hash:
        raise InvalidError("this Idempotency-Key was already used for a different request")
    return doc


def _page(docs: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    # One extra row was fetched: it tells whether a next page exists without counting.
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    return docs, encode_cursor(docs[-1]["created_at"], docs[-1]["_id"])


# posts ---------------------------------------------------------------------------------------


def stored_post(
    *,
    oid: ObjectId,
    author_id: int,
    group_id: int | None,
    content: dict[str, Any],
    at: datetime,
    idempotency_key: str,
    request_hash: str,
) -> dict[str, Any]:
    """A post as the `posts` collection stores it, before its outbox (tests and the bench write
    posts straight into the database in this same shape)."""
    return {
        "_id": oid,
        "author_id": author_id,
        "group_id": group_id,
        **content,
        "created_at": at,
        "updated_at": at,
        "schema_version": SCHEMA_VERSION,
        "rev": 0,
        "deleted_at": None,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
    }


async def create_post(
    *,
    store: Store,
    users: UsersClient,
    data: PostCreate | FlatPostCreate,
    group_id: int | None,
    idempotency_key: str | None,
) -> tuple[PostRead, bool]:
    """Create a post and its post.created event; (post, True) when the key was seen before."""
    content = data.model_dump(mode="json", exclude={"author_id", "group_id"})
    request_hash = fingerprint({"group_id": group_id, "author_id": data.author_id, **content})
    key = scoped_key(data.author_id, idempotency_key)
    first = await _replayed(store.db, repo.POSTS, key, request_hash)
    if first is not None:
        # The first request may have been taken by another instance, its event still on its way.
        store.changed(first.get("group_id"))
        return to_post(first), True

    # The local membership facts first, then the users service (see UsersClient.is_member).
    if group_id is not None:
        if not await users.is_member(group_id=group_id, user_id=data.author_id):
            raise ForbiddenError(NOT_A_MEMBER)
    elif not await users.user_exists(user_id=data.author_id):
        raise InvalidError(f"author_id {data.author_id} does not exist")

    oid, at = ObjectId(), now()
    doc = stored_post(
        oid=oid,
        author_id=data.author_id,
        group_id=group_id,
        content=content,
        at=at,
        idempotency_key=key or f"auto:{oid}",
        request_hash=request_hash,
    )
    event = new_event(
        "post.created", key=str(oid), user_id=data.author_id, payload=post_payload(doc), at=at
    )
    doc |= {"pending": True, "outbox": [event]}
    try:
        await repo.insert(store.db, repo.POSTS, doc)
    except DuplicateKeyError:
        # The same key raced us here: the other request won, return what it created.
        first = await _replayed(store.db, repo.POSTS, key, request_hash)
        if first is None:
            raise
        store.changed(first.get("group_id"))
        return to_post(first), True
    store.wake()
    store.changed(group_id)
    return to_post(doc), False


async def get_post(*, store: Store, post_id: str) -> PostRead:
    """One live post, or 404."""
    oid = parse_id(post_id)
    doc = await repo.find_post(store.db, oid)
    if doc is None:
        raise NotFoundError(f"post {post_id} not found")
    return to_post(doc, await _likes_of(store, oid))


async def _likes_of(store: Store, oid: ObjectId) -> int:
    return (await repo.count_likes(store.db, [oid])).get(oid, 0)


async def list_posts(
    *,
    store: Store,
    author_id: int | None = None,
    group_id: int | None = None,
    tag: str | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[Page[PostRead], Outcome]:
    """Posts newest first, optionally by author, group and tag; keyset-paginated. A group's
    first page comes from the feed cache when it may (the outcome says whether it did)."""
    feed = store.feed
    if feed is None or group_id is None or author_id is not None or tag is not None or cursor:
        where = _filters(author_id=author_id, group_id=group_id, tag=tag)
        return await _find_page(store, where=where, limit=limit, after=cursor), "bypass"
    where = {"group_id": group_id}
    if (cached := feed.get(group_id, limit=limit)) is not None:
        FEED_REQUESTS.labels("hit").inc()
        return _cached_page(*cached), "hit"
    with feed.filling(group_id) as fill:
        if fill is None or limit > feed.page:
            FEED_REQUESTS.labels("bypass").inc()
            return await _find_page(store, where=where, limit=limit, after=None), "bypass"
        # The whole cached page size is read and kept; the first `limit` of it answered.
        page = await _find_page(store, where=where, limit=feed.page, after=None)
        more = page.next_cursor is not None
        feed.put(fill, page.items, more=more)
    FEED_REQUESTS.labels("miss").inc()
    return _cached_page(*first_items(page.items, more=more, limit=limit)), "miss"


def _filters(*, author_id: int | None, group_id: int | None, tag: str | None) -> dict[str, Any]:
    where: dict[str, Any] = {}
    if author_id is not None:
        where["author_id"] = author_id
    if group_id is not None:
        where["group_id"] = group_id
    if tag is not None:
        where["tags"] = tag.strip().lower()
    return where


async def _find_page(
    store: Store, *, where: dict[str, Any], limit: int, after: str | None
) -> Page[PostRead]:
    position = decode_cursor(after) if after else None
    docs = await repo.find_posts(store.db, where=where, after=position, limit=limit + 1)
    docs, next_cursor = _page(docs, limit)
    likes = await repo.count_likes(store.db, [d["_id"] for d in docs])
    items = [to_post(d, likes.get(d["_id"], 0)) for d in docs]
    return Page[PostRead](items=items, next_cursor=next_cursor)


def _cached_page(items: list[PostRead], more: bool) -> Page[PostRead]:
    # The same cursor as a read from the store gives: the position of the last item shown.
    last = items[-1] if more and items else None
    next_cursor = encode_cursor(last.created_at, ObjectId(last.id)) if last else None
    return Page[PostRead](items=items, next_cursor=next_cursor)


async def update_post(*, store: Store, post_id: str, actor: int, data: PostUpdate) -> PostRead:
    """Change a post (author only) and record post.updated with the resulting fields."""
    oid = parse_id(post_id)
    changes = data.model_dump(mode="json", exclude_unset=True)
    async with store.leases.hold(post_key(oid)) as lease:
        # The lease serialises every update of this post on every instance; `rev` is a second
        # guard where updates are atomic (MongoDB): the event must match the stored post.
        for _ in range(5):
            post = await repo.find_post(store.db, oid, internal=True)
            if post is None:
                raise NotFoundError(f"post {post_id} not found")
            if post["author_id"] != actor:
                raise ForbiddenError("only the author can change this post")
            at = now()
            merged = {**post, **changes, "updated_at": at}
            event = new_event(
                "post.updated", key=str(oid), user_id=actor, payload=post_payload(merged), at=at
            )
            if await store.update_post(
                lease=lease,
                where={"_id": oid, "rev": post["rev"]},
                update={
                    "$set": {**changes, "updated_at": at, "pending": True},
                    "$inc": {"rev": 1},
                    "$push": {"outbox": event},
                },
            ):
                break
        else:
            raise ConflictError("the post kept changing while we updated it, try again")
    store.wake()
    store.changed(merged.get("group_id"))
    return to_post(merged, await _likes_of(store, oid))


async def delete_post(*, store: Store, post_id: str, actor: int) -> None:
    """Soft-delete a post (author only); the relay removes it once post.deleted is out."""
    oid = parse_id(post_id)
    async with store.leases.hold(post_key(oid)) as lease:
        post = await repo.find_post(store.db, oid, internal=True)
        if post is None:
            raise NotFoundError(f"post {post_id} not found")
        if post["author_id"] != actor:
            raise ForbiddenError("only the author can delete this post")
        at = now()
        event = new_event(
            "post.deleted", key=str(oid), user_id=actor, payload=post_deleted_payload(post), at=at
        )
        if not await store.update_post(
            lease=lease,
            where={"_id": oid},
            update={
                "$set": {"deleted_at": at, "updated_at": at, "pending": True},
                "$push": {"outbox": event},
            },
        ):
            raise NotFoundError(f"post {post_id} not found")
    store.wake()
    store.changed(post.get("group_id"))


async def _ensure_member_of_post_group(
    *, users: UsersClient, post: dict[str, Any], user_id: int
) -> None:
    # Comments and likes follow the post's group: only its members take part, as for posting.
    group_id = post.get("group_id")
    if group_id is not None and not await users.is_member(group_id=group_id, user_id=user_id):
        raise ForbiddenError(NOT_A_MEMBER)


async def like_post(*, store: Store, users: UsersClient, post_id: str, user_id: int) -> LikeRead:
    """Like a post once; liking again changes nothing and emits nothing."""
    oid = parse_id(post_id)
    post = await repo.find_post(store.db, oid)
    if post is None:
        raise NotFoundError(f"post {post_id} not found")
    await _ensure_member_of_post_group(users=users, post=post, user_id=user_id)
    at = now()
    event = new_event(
        "post.liked",
        key=str(oid),
        user_id=user_id,
        payload=post_liked_payload(post, user_id=user_id),
        at=at,
    )
    like: dict[str, Any] = {
        "_id": ObjectId(),
        "post_id": oid,
        "user_id": user_id,
        "created_at": at,
        "schema_version": SCHEMA_VERSION,
        "pending": True,
        "outbox": [event],
    }
    try:
        await repo.insert(store.db, repo.LIKES, like)
        liked = True
    except DuplicateKeyError:
        # The unique (post, user) index: this user's like exists, whichever instance wrote it.
        liked = False
    if liked:
        store.wake()
    # Changed also when the like was there: another instance may have taken it a moment ago.
    store.changed(post.get("group_id"))
    likes = await _likes_of(store, oid)
    return LikeRead(post_id=post_id, user_id=user_id, likes=likes, liked=liked)


LIKES_OUT_OF_POSTS = "likes-out-of-posts"
# A whole-collection scan per page of old posts: the socket timeout of requests is far too short.
MIGRATION_TIMEOUT_S = 900.0


async def adopt_embedded_likes(*, store: Store, batch: int = 200) -> int:
    """Move likes kept inside posts (`liked_by`, before likes had documents) into the likes
    collection, then drop them from the posts; idempotent, run at start-up before requests.

    Their post.liked events were queued in the post's outbox when they were made, so the new
    documents carry none: a queued one still goes out with the post, none is emitted twice.
    Returns how many likes were new.

    It runs to completion once per database: no post is written with `liked_by` any more, and
    finding the old ones is a scan of every post on FerretDB v1 (the filter is not pushed down),
    which with the ~20k posts a bench run left outlasted the client's socket timeout. Retried
    on every start, that scan kept the service answering 503 for good (2026-12-02, 17:28 on).
    """
    if await repo.migration_done(store.db, LIKES_OUT_OF_POSTS):
        return 0
    with pymongo.timeout(MIGRATION_TIMEOUT_S):
        moved = await _adopt(store=store, batch=batch)
    await repo.mark_migration_done(store.db, LIKES_OUT_OF_POSTS)
    return moved


async def _adopt(*, store: Store, batch: int) -> int:
    moved, after = 0, None
    while posts := await repo.find_posts_with_liked_by(store.db, after=after, limit=batch):
        after = posts[-1]["_id"]
        for post in posts:
            likes = [
                {
                    "_id": ObjectId(),
                    "post_id": post["_id"],
                    "user_id": int(uid),
                    "created_at": post["created_at"],
                    "schema_version": SCHEMA_VERSION,
                    "pending": False,
                    "outbox": [],
                }
                for uid in dict.fromkeys(post.get("liked_by") or [])
            ]
            moved += await repo.insert_likes(store.db, likes)
            async with store.leases.hold(post_key(post["_id"])), store.update_slots:
                await repo.drop_liked_by(store.db, post_id=post["_id"])
    return moved


# comments ------------------------------------------------------------------------------------


async def add_comment(
    *,
    store: Store,
    users: UsersClient,
    post_id: str,
    data: CommentCreate,
    idempotency_key: str | None,
) -> tuple[CommentRead, bool]:
    """Comment on a live post; the comment document carries its comment.created event."""
    oid = parse_id(post_id)
    request_hash = fingerprint({"post_id": post_id, **data.model_dump(mode="json")})
    key = scoped_key(data.author_id, idempotency_key)
    first = await _replayed(store.db, repo.COMMENTS, key, request_hash)
    if first is not None:
        return to_comment(first), True
    post = await repo.find_post(store.db, oid)
    if post is None:
        raise NotFoundError(f"post {post_id} not found")
    await _ensure_member_of_post_group(users=users, post=post, user_id=data.author_id)
    cid, at = ObjectId(), now()
    doc: dict[str, Any] = {
        "_id": cid,
        "post_id": oid,
        "author_id": data.author_id,
        "body": data.body,
        "created_at": at,
        "schema_version": SCHEMA_VERSION,
        "idempotency_key": key or f"auto:{cid}",
        "request_hash": request_hash,
    }
    event = new_event(
        "comment.created",
        key=str(oid),
        user_id=data.author_id,
        payload=comment_payload(doc, post),
        at=at,
    )
    doc |= {"pending": True, "outbox": [event]}
    try:
        await repo.insert(store.db, repo.COMMENTS, doc)
    except DuplicateKeyError:
        first = await _replayed(store.db, repo.COMMENTS, key, request_hash)
        if first is None:
            raise
        return to_comment(first), True
    store.wake()
    return to_comment(doc), False


async def list_comments(
    *, store: Store, post_id: str, limit: int, cursor: str | None
) -> Page[CommentRead]:
    """Comments of a live post, oldest first; keyset-paginated."""
    oid = parse_id(post_id)
    if await repo.find_post(store.db, oid) is None:
        raise NotFoundError(f"post {post_id} not found")
    after = decode_cursor(cursor) if cursor else None
    docs = await repo.find_comments(store.db, post_id=oid, after=after, limit=limit + 1)
    docs, next_cursor = _page(docs, limit)
    return Page[CommentRead](items=[to_comment(d) for d in docs], next_cursor=next_cursor)
