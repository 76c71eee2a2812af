"""What the `cache` projection turns each event into (no Redis: the ops are inspected)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import ClusterDownError, ResponseError, TryAgainError

from campus_common import topics
from campus_common.consumer import PoisonRecordError
from campus_common.events import ChangeRecord, Event
from campus_gateway.cache import HOT_POSTS, LEADERBOARD, Cache
from campus_gateway.config import Settings
from campus_gateway.projection import POINTS, CacheProjection

pytestmark = pytest.mark.unit

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def projection() -> CacheProjection:
    settings = Settings(
        redis_password=SecretStr("x"),
        jwt_secret=SecretStr("y" * 32),
        admin_email="admin@x.edu",
        admin_password=SecretStr("z" * 12),
    )
    # Never connects: a client is only opened on the first command.
    return CacheProjection(Cache(Redis(), settings), settings)


def event(kind: str, **payload: object) -> Event:
    return Event(type=kind, source="test", key="k", occurred_at=AT, payload=payload)


def score_changes(ops: list[tuple[object, ...]]) -> dict[object, object]:
    return {op[3]: op[2] for op in ops if op[0] == "ZINCRBY" and op[1] == LEADERBOARD}


def test_points_table(projection: CacheProjection) -> None:
    created = projection._ops(
        event("post.created", post_id="p1", group_id=3, author_id=7, title="T")
    )
    assert score_changes(created) == {7: POINTS["post"]}
    assert ("ZADD", HOT_POSTS, "NX", AT.timestamp(), "p1") in created
    assert any(op[:2] == ("LPUSH", "recent:group:3") for op in created)
    assert ("LTRIM", "recent:group:3", 0, 49) in created

    comment = projection._ops(
        event(
            "comment.created",
            comment_id="c",
            post_id="p1",
            group_id=3,
            author_id=8,
            post_author_id=7,
        )
    )
    assert score_changes(comment) == {8: POINTS["comment"]}
    liked = projection._ops(event("post.liked", post_id="p1", group_id=3, user_id=9, author_id=7))
    assert score_changes(liked) == {7: POINTS["like_received"]}
    deleted = projection._ops(event("post.deleted", post_id="p1", group_id=3, author_id=7))
    assert score_changes(deleted) == {7: -POINTS["post"]}
    assert ("ZREM", HOT_POSTS, "p1") in deleted
    friends = projection._ops(event("friend.added", user_id=1, other_id=2))
    assert score_changes(friends) == {1: 1, 2: 1}
    follow = projection._ops(event("follow.removed", follower_id=1, followee_id=2))
    assert score_changes(follow) == {2: -1}


def test_posts_outside_groups_have_no_activity(projection: CacheProjection) -> None:
    ops = projection._ops(event("post.created", post_id="p", group_id=None, author_id=7, title="T"))
    assert score_changes(ops) == {7: POINTS["post"]}
    assert not any(op[0] == "LPUSH" for op in ops)


def test_engagement_only_boosts_posts_already_hot(projection: CacheProjection) -> None:
    ops = projection._ops(event("post.liked", post_id="p", group_id=1, user_id=2, author_id=3))
    assert ("ZADD", HOT_POSTS, "XX", "INCR", 600, "p") in ops


def test_updates_and_unknown_events_change_nothing(projection: CacheProjection) -> None:
    assert projection._ops(event("post.updated", post_id="p", group_id=1, author_id=2)) == []
    assert projection._ops(event("something.new")) == []


@pytest.mark.parametrize(
    "payload", [{}, {"post_id": "p", "group_id": 1, "author_id": "x", "title": "t"}]
)
def test_bad_payloads_are_poison(projection: CacheProjection, payload: dict[str, object]) -> None:
    with pytest.raises((KeyError, PoisonRecordError)):
        projection._ops(event("post.created", **payload))


def record(topic: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, 0, 0, 0, 0, None, value, None, 0, 0 if value is None else len(value), []
    )


def test_decode_by_topic(projection: CacheProjection) -> None:
    change = {
        "op": "u",
        "before": None,
        "after": {"id": 1, "email": "a@b.edu", "full_name": "A"},
        "source": {"table": "users", "ts_ms": 1, "lsn": 99},
    }
    assert isinstance(projection.decode(record(topics.USERS, orjson.dumps(change))), ChangeRecord)
    truncate = {**change, "op": "t", "after": None}
    assert projection.decode(record(topics.USERS, orjson.dumps(truncate))) is None
    assert projection.decode(record(topics.USERS, None)) is None
    ev = event("post.created", post_id="p", group_id=1, author_id=2, title="t")
    assert isinstance(projection.decode(record(topics.DOCUMENT_EVENTS, ev.to_bytes())), Event)
    with pytest.raises(ValueError):
        projection.decode(record(topics.GRAPH_EVENTS, b"not json"))


def test_event_ids_are_the_dedupe_key() -> None:
    a = Event(type="post.liked", source="t", key="k", payload={})
    assert isinstance(a.id, uuid.UUID)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'"), True),
        # How a pipeline raises a command's error: prefixed with the command.
        (
            ResponseError(
                "Command # 2 (EVALSHA abc 1 user:1) of pipeline caused error: "
                "('OOM command not allowed',)"
            ),
            True,
        ),
        (ClusterDownError("CLUSTERDOWN The cluster is down"), True),
        (TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"), True),
        (ConnectionError("refused"), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (
            ResponseError(
                "Command # 1 (LPUSH recent:group:1 BUSY) of pipeline caused error: "
                "('WRONGTYPE Operation against a key',)"
            ),
            False,
        ),
    ],
)
def test_redis_full_busy_or_failing_over_is_transient(
    projection: CacheProjection, exc: BaseException, transient: bool
) -> None:
    assert projection.is_transient(exc) is transient
