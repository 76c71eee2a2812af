"""The `cache` projection: keeps Redis in step with the CDC and domain-event topics.

Points (leaderboard:points), derived from the event stream so a replay rebuilds them:
join a group +5, write a post +10 (-10 when it is deleted), comment +2, like received +1,
friend made +1 each (-1 when removed), follower gained +1 (-1 when lost).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import ClusterError, ResponseError, TryAgainError

from campus_common import topics
from campus_common.consumer import (
    Delivered,
    PoisonRecordError,
    Projection,
    ignore,
    on_change,
    on_event,
    on_heartbeat,
)
from campus_common.events import ChangeRecord, Event
from campus_gateway.cache import (
    HOT_POSTS,
    LEADERBOARD,
    Cache,
    Op,
    RedisBatch,
    activity_key,
    encode_entry,
    profile_key,
)
from campus_gateway.config import Settings
from campus_gateway.profiles import normalize

log = logging.getLogger(__name__)
# Redis replies that mean "not now" rather than "never": full, busy, loading its data, or (Redis
# Cluster) a slot without a master while a replica is promoted.
TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN")
PIPELINE_ERROR = "of pipeline caused error: "

POINTS = {"join": 5, "post": 10, "comment": 2, "like_received": 1, "friend": 1, "follower": 1}
# hot:posts scores are seconds since the epoch, pushed forward by engagement, so a post
# commented on an hour after it was written ranks like a brand-new one.
HOT_BOOST_S = {"comment": 3600, "like": 600}

Item = ChangeRecord | Event


def _keep(item: Item) -> Item:
    return item


class CacheProjection(Projection[Item]):
    name = "cache"
    # Heartbeats are read for the runner's staleness figure only: Redis keeps no freshness row.
    routes = {
        topics.USERS: on_change(_keep),
        topics.GROUPS: on_change(_keep),
        topics.MEMBERSHIPS: on_change(_keep),
        topics.HEARTBEATS: on_heartbeat(ignore),
        **{topic: on_event(_keep) for topic in topics.DOMAIN_TOPICS},
    }

    def __init__(self, cache: Cache, settings: Settings) -> None:
        self.cache = cache
        self.ttl = settings.cache_ttl_s
        # Longer than any call to a service can take: a cache fill that read the row before
        # this change can no longer land once the marker is gone.
        self.invalidation_ttl = max(10, int(settings.upstream_timeout_s * 2))
        self.activity_max = settings.activity_list_max
        self.hot_max = settings.hot_posts_max

    async def reset(self) -> None:
        """Remove every key this projection derives, before a rebuild replays the topics."""
        redis = self.cache.redis
        await redis.delete(LEADERBOARD, HOT_POSTS)
        for pattern in ("user:*", "group:*", "recent:group:*", "processed:*"):
            batch: list[bytes] = []
            async for key in redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    await redis.unlink(*batch)
                    batch.clear()
            if batch:
                await redis.unlink(*batch)

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, ClusterError | TryAgainError):
            return True  # a Redis Cluster failing over or moving slots: wait, never dead-letter
        if isinstance(exc, ResponseError):
            # A command Redis refuses is a bad record, unless Redis is just full or busy, or its
            # cluster is failing over. A pipeline prefixes the error with the command that
            # failed ("Command # 2 (...) of pipeline caused error: ('OOM ...',)").
            message = str(exc).partition(PIPELINE_ERROR)[2].lstrip("('\"") or str(exc)
            return message.startswith(TRANSIENT_REPLIES)
        return super().is_transient(exc)

    async def apply(self, batch: Sequence[Delivered[Item]]) -> None:
        """The whole batch in one round trip (one script call; see `Cache.apply_batch`)."""
        writes = RedisBatch()
        for item in batch:
            value = item.value
            if isinstance(value, ChangeRecord):
                self._change(writes, item.topic, value)
            else:
                self._event(writes, value)
        await self.cache.apply_batch(writes)

    # CDC ------------------------------------------------------------------------------------

    def _change(self, writes: RedisBatch, topic: str, change: ChangeRecord) -> None:
        write = {
            topics.USERS: self._user,
            topics.GROUPS: self._group,
            topics.MEMBERSHIPS: self._membership,
        }[topic]
        write(writes, change, change.row, change.position)

    def _user(
        self, writes: RedisBatch, change: ChangeRecord, row: dict[str, Any], lsn: int
    ) -> None:
        user_id = _id(row, "id")
        key = profile_key("user", user_id)
        if change.is_delete:
            entry = encode_entry("D", lsn)
            writes.run(("ZREM", LEADERBOARD, user_id))  # a deleted account leaves the ranking
        else:
            entry = encode_entry("V", lsn, normalize("user", row))
        writes.put_if_newer(key, entry, lsn, self.ttl)

    def _group(
        self, writes: RedisBatch, change: ChangeRecord, row: dict[str, Any], lsn: int
    ) -> None:
        key = profile_key("group", _id(row, "id"))
        if change.is_delete:
            writes.put_if_newer(key, encode_entry("D", lsn), lsn, self.ttl)
        else:
            # The row lacks member_count, so the entry is invalidated rather than refreshed.
            writes.put_if_newer(key, encode_entry("S", lsn), lsn, self.invalidation_ttl)

    def _membership(
        self, writes: RedisBatch, change: ChangeRecord, row: dict[str, Any], lsn: int
    ) -> None:
        user_id, group_id = _id(row, "user_id"), _id(row, "group_id")
        key = profile_key("group", group_id)
        writes.put_if_newer(key, encode_entry("S", lsn), lsn, self.invalidation_ttl)
        if change.op in ("c", "r"):
            # joined_at tells one membership from a later re-join; a re-snapshot of the same
            # membership (op r after op c) must not count twice.
            joined_at = row.get("joined_at") or str(lsn)
            activity = {
                "type": "join",
                "user_id": user_id,
                "role": row.get("role"),
                "at": joined_at,
            }
            ops = [
                ("ZINCRBY", LEADERBOARD, POINTS["join"], user_id),
                *self._activity(group_id, activity),
            ]
            writes.apply_once(f"join:{user_id}:{group_id}:{joined_at}", ops)
        elif change.is_delete:
            activity = {"type": "leave", "user_id": user_id, "at": _iso(change.committed_at)}
            writes.apply_once(
                f"leave:{user_id}:{group_id}:{lsn}", self._activity(group_id, activity)
            )

    # domain events ------------------------------------------------------------------------

    def _event(self, writes: RedisBatch, event: Event) -> None:
        ops = self._ops(event)
        if ops:
            writes.apply_once(str(event.id), ops)

    def _ops(self, event: Event) -> list[Op]:
        p = event.payload
        at = _iso(event.occurred_at)
        match event.type:
            case "post.created":
                post_id = str(p["post_id"])
                return [
                    ("ZINCRBY", LEADERBOARD, POINTS["post"], _id(p, "author_id")),
                    ("ZADD", HOT_POSTS, "NX", event.occurred_at.timestamp(), post_id),
                    ("ZREMRANGEBYRANK", HOT_POSTS, 0, -self.hot_max - 1),
                    *self._activity(
                        p.get("group_id"),
                        {
                            "type": "post",
                            "user_id": _id(p, "author_id"),
                            "post_id": post_id,
                            "title": p.get("title"),
                            "at": at,
                        },
                    ),
                ]
            case "post.deleted":
                return [
                    ("ZINCRBY", LEADERBOARD, -POINTS["post"], _id(p, "author_id")),
                    ("ZREM", HOT_POSTS, str(p["post_id"])),
                ]
            case "comment.created":
                post_id = str(p["post_id"])
                return [
                    ("ZINCRBY", LEADERBOARD, POINTS["comment"], _id(p, "author_id")),
                    ("ZADD", HOT_POSTS, "XX", "INCR", HOT_BOOST_S["comment"], post_id),
                    *self._activity(
                        p.get("group_id"),
                        {
                            "type": "comment",
                            "user_id": _id(p, "author_id"),
                            "post_id": post_id,
                            "at": at,
                        },
                    ),
                ]
            case "post.liked":
                post_id = str(p["post_id"])
                return [
                    ("ZINCRBY", LEADERBOARD, POINTS["like_received"], _id(p, "author_id")),
                    ("ZADD", HOT_POSTS, "XX", "INCR", HOT_BOOST_S["like"], post_id),
                    *self._activity(
                        p.get("group_id"),
                        {
                            "type": "like",
                            "user_id": _id(p, "user_id"),
                            "post_id": post_id,
                            "at": at,
                        },
                    ),
                ]
            case "friend.added" | "friend.removed":
                delta = POINTS["friend"] if event.type == "friend.added" else -POINTS["friend"]
                return [
                    ("ZINCRBY", LEADERBOARD, delta, _id(p, "user_id")),
                    ("ZINCRBY", LEADERBOARD, delta, _id(p, "other_id")),
                ]
            case "follow.added" | "follow.removed":
                delta = POINTS["follower"] if event.type == "follow.added" else -POINTS["follower"]
                return [("ZINCRBY", LEADERBOARD, delta, _id(p, "followee_id"))]
        return []  # post.updated and unknown types leave Redis as it is

    def _activity(self, group_id: Any, entry: dict[str, Any]) -> list[Op]:
        if group_id is None:
            return []  # a post outside any group has no group activity list
        key = activity_key(_id({"group_id": group_id}, "group_id"))
        return [
            ("LPUSH", key, orjson.dumps(entry).decode()),
            ("LTRIM", key, 0, self.activity_max - 1),
        ]


def _iso(at: datetime) -> str:
    # The same spelling as the timestamps Debezium and the services write.
    return at.isoformat().replace("+00:00", "Z")


def _id(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise PoisonRecordError(f"{name}={value!r} is not an id")
    return int(value)
