"""The reconcile's fold of the log (`Log.add`): what each record leaves behind, and what not.

Pure logic: records are built in memory; the comparison with real stores is in tests/e2e.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from campus_cli.reconcile import POINTS, Log, live_edges
from campus_common import topics

_offsets: dict[str, int] = {}


def _record(topic: str, value: dict[str, Any], partition: int = 0) -> ConsumerRecord[Any, Any]:
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    raw = orjson.dumps(value)
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", raw, None, 0, len(raw), [])


def _change(topic: str, op: str, row: dict[str, Any], lsn: int) -> ConsumerRecord[Any, Any]:
    before, after = (row, None) if op == "d" else (None, row)
    source = {"table": topic.rsplit(".", 1)[1], "ts_ms": 1_700_000_000_000, "lsn": lsn}
    return _record(topic, {"op": op, "before": before, "after": after, "source": source})


def _event(topic: str, type_: str, payload: dict[str, Any], id_: str | None = None) -> Any:
    event = {
        "id": id_ or str(uuid.uuid4()),
        "type": type_,
        "occurred_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
        "source": "test",
        "key": "k",
        "payload": payload,
    }
    return _record(topic, event)


async def _fold(*records: ConsumerRecord[Any, Any], dead: dict[str, Any] | None = None) -> Log:
    log = Log(dead=dead or {})
    for rec in records:
        await log.add(rec)
    return log


async def test_a_deleted_row_leaves_no_position_behind() -> None:
    user = {"id": 1, "full_name": "Ada", "created_at": "2026-12-01T00:00:00Z"}
    group = {"id": 2, "name": "Chess", "created_at": "2026-12-01T00:00:00Z"}
    log = await _fold(
        _change(topics.USERS, "c", user, 10),
        _change(topics.USERS, "u", {**user, "full_name": "Ada L."}, 20),
        _change(topics.GROUPS, "c", group, 30),
        _change(topics.GROUPS, "d", group, 40),
    )
    assert log.positions == {("users", (1,)): 20}
    assert log.records == 4


async def test_edges_follow_the_last_event_of_each_pair_and_a_republish_counts_once() -> None:
    added = str(uuid.uuid4())
    log = await _fold(
        _event(topics.GRAPH_EVENTS, "friend.added", {"user_id": 2, "other_id": 1}, added),
        _event(topics.GRAPH_EVENTS, "friend.added", {"user_id": 2, "other_id": 1}, added),
        _event(topics.GRAPH_EVENTS, "friend.added", {"user_id": 3, "other_id": 1}),
        _event(topics.GRAPH_EVENTS, "friend.removed", {"user_id": 1, "other_id": 3}),
        _event(topics.GRAPH_EVENTS, "follow.added", {"follower_id": 1, "followee_id": 4}),
    )
    friends, follows = live_edges(log, {1: "a", 2: "b", 3: "c"})
    assert friends == {(1, 2), (2, 1)}
    assert follows == set()  # user 4 is gone: the edge went with the node
    # The republished friend.added adds its point once.
    # Added twice (once republished, counted once), then a second friend added and removed.
    assert log.cache.points[1] == POINTS["friend"]
    assert log.cache.points[2] == POINTS["friend"]


async def test_a_dead_lettered_record_is_left_out_of_that_projection_only() -> None:
    row = {"id": 5, "full_name": "Bo", "created_at": "2026-12-01T00:00:00Z"}
    rec = _change(topics.USERS, "c", row, 50)
    where = (rec.topic, rec.partition, rec.offset)
    log = await _fold(rec, dead={"graph": {where}})
    assert log.positions == {}
    other = await _fold(rec, dead={"cache": {where}})
    assert other.positions == {("users", (5,)): 50}


async def test_documents_facts_keep_every_id_and_count_republished_records() -> None:
    post = {"post_id": "p1", "author_id": 7, "group_id": 1, "title": "t"}
    eid = str(uuid.uuid4())
    log = await _fold(
        _event(topics.DOCUMENT_EVENTS, "post.created", post, eid),
        _event(topics.DOCUMENT_EVENTS, "post.created", post, eid),
        _event(topics.DOCUMENT_EVENTS, "post.liked", {**post, "user_id": 8}),
        _record(topics.DOCUMENT_EVENTS, {"not": "an event"}),
    )
    assert log.documents.facts[("post", "p1")] == [eid, eid]
    assert log.documents.republished == 1
    assert log.unparseable == 1
    # Counted once on the leaderboard: 10 for the post, 1 for the like it received.
    assert log.cache.points[7] == POINTS["post"] + POINTS["like_received"]
    assert log.cache.hot["p1"] > 0
