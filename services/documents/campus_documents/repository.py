"""Queries against the `campus` document database; the only module that touches it.

Only operators that FerretDB v1 and MongoDB 7 both implement the same way are used: equality,
range, $in, $exists and $or filters, $set/$unset/$inc/$push/$pullAll (FerretDB's $pull matches
whole values only, so published events are removed by exact value), $size, plain sorts
and counts. No transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]
Db = AsyncDatabase[Doc]
Position = tuple[datetime, ObjectId]
DUPLICATE_KEY = 11000

POSTS = "posts"
COMMENTS = "comments"
# One document per (post, user): a like is an insert, never an update of the post.
LIKES = "likes"
# Cross-instance locks of posts and of the relay (see locks.py).
LEASES = "leases"
# Events queued again by `campus reconcile --repair` (a lost post.created, comment.created or
# post.liked), one insert-only document each: the repair never updates a post, a comment or a
# like, so it needs none of their leases (an update on FerretDB v1 can lose a concurrent one).
REQUEUED = "requeued"
OUTBOX_COLLECTIONS = (POSTS, COMMENTS, LIKES, REQUEUED)
# Data migrations that ran to completion, one document each (`_id`: the migration's name).
MIGRATIONS = "migrations"

# Internal fields never returned by the API.
HIDDEN = {"outbox": 0, "pending": 0, "idempotency_key": 0, "request_hash": 0, "rev": 0}
LIVE: Doc = {"deleted_at": None}

INDEXES: Mapping[str, list[IndexModel]] = {
    POSTS: [
        IndexModel(
            [("group_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="posts_group_feed",
        ),
        IndexModel(
            [("author_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="posts_author",
        ),
        IndexModel([("tags", ASCENDING), ("created_at", DESCENDING)], name="posts_tags"),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="posts_recent"),
        IndexModel([("pending", ASCENDING)], name="posts_pending"),
        # Every post carries a key (a generated one when the client sent none), so the unique
        # index needs no partial filter, which FerretDB v1 does not support.
        IndexModel([("idempotency_key", ASCENDING)], name="posts_idempotency", unique=True),
    ],
    COMMENTS: [
        IndexModel(
            [("post_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="comments_post",
        ),
        IndexModel([("pending", ASCENDING)], name="comments_pending"),
        IndexModel([("idempotency_key", ASCENDING)], name="comments_idempotency", unique=True),
    ],
    LIKES: [
        # A user likes a post once: a second insert is a DuplicateKeyError, on every instance.
        IndexModel(
            [("post_id", ASCENDING), ("user_id", ASCENDING)], name="likes_once", unique=True
        ),
        IndexModel([("pending", ASCENDING)], name="likes_pending"),
    ],
    LEASES: [IndexModel([("key", ASCENDING)], name="leases_key", unique=True)],
    REQUEUED: [IndexModel([("pending", ASCENDING)], name="requeued_pending")],
}


async def ensure_indexes(db: Db) -> None:
    """Create the indexes that are missing; re-running with the same specs changes nothing."""
    for collection, models in INDEXES.items():
        for model in models:
            # One per command: FerretDB v1.24 drops the connection (a panic in createIndexes)
            # when one command names several indexes that all exist already.
            await db[collection].create_indexes([model])


async def ping(db: Db) -> None:
    await db.command("ping")


def _after(position: Position | None, *, descending: bool) -> Doc:
    """Keyset condition: strictly after `position` in (created_at, _id) order."""
    if position is None:
        return {}
    at, oid = position
    op = "$lt" if descending else "$gt"
    return {"$or": [{"created_at": {op: at}}, {"created_at": at, "_id": {op: oid}}]}


# posts ---------------------------------------------------------------------------------------


async def insert(db: Db, collection: str, doc: Doc) -> None:
    """Insert one document; raises DuplicateKeyError when its idempotency key exists."""
    await db[collection].insert_one(doc)


async def find_by_key(db: Db, collection: str, key: str) -> Doc | None:
    """The document created under an idempotency key, deleted or not."""
    return await db[collection].find_one({"idempotency_key": key})


async def find_post(db: Db, post_id: ObjectId, *, internal: bool = False) -> Doc | None:
    """A live post; `internal` also returns the outbox and bookkeeping fields."""
    return await db[POSTS].find_one({"_id": post_id, **LIVE}, None if internal else HIDDEN)


async def find_posts(db: Db, *, where: Doc, after: Position | None, limit: int) -> list[Doc]:
    """Live posts matching `where`, newest first, starting after `after`."""
    query = {**where, **LIVE, **_after(after, descending=True)}
    cursor = (
        db[POSTS]
        .find(query, HIDDEN)
        .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


async def update_post(db: Db, *, where: Doc, update: Doc) -> bool:
    """Apply `update` to the live post matching `where`; whether one matched."""
    result = await db[POSTS].update_one({**where, **LIVE}, update)
    return result.matched_count == 1


async def find_posts_with_liked_by(db: Db, *, after: ObjectId | None, limit: int) -> list[Doc]:
    """Posts that still keep their likes inside (written before likes had their own documents),
    in _id order after `after`."""
    where: Doc = {"liked_by": {"$exists": True}}
    if after is not None:
        where["_id"] = {"$gt": after}
    cursor = (
        db[POSTS].find(where, {"liked_by": 1, "created_at": 1}).sort("_id", ASCENDING).limit(limit)
    )
    return await cursor.to_list(length=limit)


async def migration_done(db: Db, name: str) -> bool:
    return await db[MIGRATIONS].find_one({"_id": name}) is not None


async def mark_migration_done(db: Db, name: str) -> None:
    await db[MIGRATIONS].update_one(
        {"_id": name}, {"$setOnInsert": {"done_at": datetime.now(UTC)}}, upsert=True
    )


async def drop_liked_by(db: Db, *, post_id: ObjectId) -> None:
    """Remove the embedded likes of a post once they live in the likes collection."""
    await db[POSTS].update_one({"_id": post_id}, {"$unset": {"liked_by": "", "meta.likes": ""}})


# likes ---------------------------------------------------------------------------------------


async def insert_likes(db: Db, likes: list[Doc]) -> int:
    """Insert likes, skipping those that exist (same post and user); how many were new."""
    # One by one: a one-off move, and no doubt about which ones a bulk insert skipped.
    new = 0
    for like in likes:
        try:
            await db[LIKES].insert_one(like)
            new += 1
        except DuplicateKeyError:
            pass
    return new


async def count_likes(db: Db, post_ids: list[ObjectId]) -> dict[ObjectId, int]:
    """Likes per post (posts without likes are absent).

    One equality count per post, sent together: FerretDB v1 pushes an equality on `post_id`
    down to PostgreSQL but not `$in`, which scans every like (measured with 5,000 likes: one
    `$in` aggregation for 20 posts 1.8 s, 20 equality counts 0.28 s, on a loaded host).
    """

    async def one(post_id: ObjectId) -> tuple[ObjectId, int]:
        return post_id, await db[LIKES].count_documents({"post_id": post_id})

    counts = await asyncio.gather(*(one(post_id) for post_id in dict.fromkeys(post_ids)))
    return {post_id: n for post_id, n in counts if n}


# comments ------------------------------------------------------------------------------------


async def find_comments(
    db: Db, *, post_id: ObjectId, after: Position | None, limit: int
) -> list[Doc]:
    """Comments of a post, oldest first, starting after `after`."""
    query = {"post_id": post_id, **_after(after, descending=False)}
    cursor = (
        db[COMMENTS]
        .find(query, HIDDEN)
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


# outbox --------------------------------------------------------------------------------------


async def find_pending(db: Db, collection: str, *, limit: int) -> list[Doc]:
    """Documents with events waiting to be published (oldest first)."""
    cursor = (
        db[collection]
        .find({"pending": True}, {"outbox": 1, "deleted_at": 1})
        .sort("_id", ASCENDING)
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


async def mark_published(db: Db, collection: str, *, docs: list[Doc]) -> list[ObjectId]:
    """Empty the outbox of documents whose outbox is still exactly what was published.

    One command for the whole batch: on FerretDB v1 every filter is a sequential scan, so one
    scan (narrowed to `pending: true` in PostgreSQL) beats one per document. Returns the ids
    that did not match because an event was added since: clear those with clear_published.
    """
    if not docs:
        return []
    match = {"pending": True, "$or": [{"_id": d["_id"], "outbox": d["outbox"]} for d in docs]}
    result = await db[collection].update_many(match, {"$set": {"outbox": [], "pending": False}})
    if result.matched_count == len(docs):
        return []
    ids = [d["_id"] for d in docs]
    cursor = db[collection].find({"pending": True, "_id": {"$in": ids}}, {"_id": 1})
    return [d["_id"] async for d in cursor]


async def clear_published(db: Db, collection: str, *, doc_id: ObjectId, events: list[Doc]) -> None:
    """Remove exactly these events; drop the pending flag if the outbox is now empty."""
    coll = db[collection]
    if events:
        await coll.update_one({"_id": doc_id}, {"$pullAll": {"outbox": events}})
    # A separate, conditional step: an event pushed in between keeps the flag set.
    await coll.update_one(
        {"_id": doc_id, "pending": True, "outbox": {"$size": 0}}, {"$set": {"pending": False}}
    )


async def drop_published(db: Db, collection: str, *, ids: list[ObjectId]) -> None:
    """Remove documents whose events are all out (a requeued event's document is only that)."""
    if ids:
        await db[collection].delete_many({"_id": {"$in": ids}, "pending": False})


async def purge_post(db: Db, *, post_id: ObjectId) -> bool:
    """Remove a deleted post whose events are all published, and its settled comments."""
    result = await db[POSTS].delete_one(
        {"_id": post_id, "deleted_at": {"$ne": None}, "pending": False}
    )
    if result.deleted_count == 0:
        return False
    # A comment or like whose event is still pending stays until published; it is unreachable
    # anyway.
    await db[COMMENTS].delete_many({"post_id": post_id, "pending": False})
    await db[LIKES].delete_many({"post_id": post_id, "pending": False})
    return True


# leases --------------------------------------------------------------------------------------


async def insert_leases(db: Db, leases: list[Doc]) -> None:
    """Insert every lease whose key is free; BulkWriteError lists the taken ones."""
    await db[LEASES].insert_many(leases, ordered=False)


async def find_lease(db: Db, *, key: str) -> Doc | None:
    """The lease held on `key`, if any."""
    return await db[LEASES].find_one({"key": key})


async def find_leases(db: Db, *, tokens: list[str]) -> list[str]:
    """Which of these lease tokens are stored."""
    return [d["_id"] async for d in db[LEASES].find({"_id": {"$in": tokens}}, {"_id": 1})]


async def delete_expired_lease(db: Db, *, key: str, at: datetime) -> None:
    """Remove the lease of `key` if it expired by `at`."""
    await db[LEASES].delete_one({"key": key, "expires_at": {"$lte": at}})


async def delete_leases(db: Db, *, tokens: list[str]) -> None:
    """Remove exactly these leases (a lease's _id is its holder's token)."""
    await db[LEASES].delete_many({"_id": {"$in": tokens}})
