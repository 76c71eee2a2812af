"""The graph projection's pure parts: decoding, batch reduction, write planning, error triage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from neo4j.exceptions import CypherSyntaxError, Neo4jError, ServiceUnavailable, SessionExpired
from pydantic import ValidationError

from campus_common import topics
from campus_common.consumer import PoisonRecordError
from campus_graph.projection import (
    GraphChange,
    GraphProjection,
    is_data_error,
    latest_per_key,
    plan_writes,
    tombstone_key,
)
from campus_graph.service import graph_event, outbox_message

pytestmark = pytest.mark.unit

USER = {
    "id": 7,
    "email": "ada@university.edu",
    "full_name": "Ada",
    "created_at": "2025-01-02T03:04:05.123456Z",
    "updated_at": "2025-01-02T03:04:06Z",
}


def record(topic: str, value: dict[str, Any] | bytes | None) -> ConsumerRecord[bytes, bytes]:
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return ConsumerRecord(topic, 0, 0, 0, 0, b'{"id":7}', raw, None, 0, 0, [])


def change(
    op: str, *, before: Any = None, after: Any = None, lsn: int | None = 100
) -> dict[str, Any]:
    source = {"table": "users", "ts_ms": 1, "lsn": lsn}
    return {"op": op, "before": before, "after": after, "source": source}


def gc(
    kind: Any, key: tuple[int, ...], lsn: int, deleted: bool = False, **props: Any
) -> GraphChange:
    return GraphChange(kind, key, lsn, deleted, props)


projection = GraphProjection(driver=None)  # type: ignore[arg-type]


def test_user_create_keeps_the_graph_columns_with_validated_iso_times() -> None:
    got = projection.decode(record(topics.USERS, change("c", after=USER, lsn=42)))
    assert got is not None
    assert (got.kind, got.key, got.lsn, got.deleted) == ("user", (7,), 42, False)
    # ISO-8601 text, which Cypher's datetime() parses on the server.
    created = datetime.fromisoformat(got.props["created_at"])
    assert created == datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert set(got.props) == {"id", "email", "full_name", "created_at", "updated_at"}


def test_delete_needs_only_the_primary_key() -> None:
    got = projection.decode(
        record(topics.MEMBERSHIPS, change("d", before={"user_id": 7, "group_id": 3}))
    )
    assert got == GraphChange("membership", (7, 3), 100, True, {})


def test_heartbeat_becomes_one_freshness_key() -> None:
    got = projection.decode(
        record(topics.HEARTBEATS, change("u", after={"id": 1, "beat_at": "2025-01-02T03:04:05Z"}))
    )
    assert got is not None and got.kind == "heartbeat" and got.key == ()


@pytest.mark.parametrize("value", [None, change("t")])
def test_tombstones_and_truncates_are_skipped(value: Any) -> None:
    assert projection.decode(record(topics.USERS, value)) is None


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        change("c", after=USER, lsn=None),  # no WAL position: cannot be ordered
        change("c", after={**USER, "id": 0}),
        change("c", after={"id": 7}),  # columns missing
        change("c", after={**USER, "created_at": "yesterday"}),  # not a time: never sent on
        change("c", after=None),
    ],
)
def test_records_that_can_never_apply_raise(value: Any) -> None:
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        projection.decode(record(topics.USERS, value))


def test_validation_error_is_a_value_error() -> None:
    assert issubclass(ValidationError, ValueError)


def test_latest_per_key_keeps_highest_lsn_and_the_later_of_a_tie() -> None:
    batch = [
        gc("user", (1,), 10, full_name="a"),
        gc("user", (1,), 30, full_name="c"),
        gc("user", (1,), 20, full_name="b"),
        gc("group", (1,), 5),
        gc("membership", (1, 1), 7),
        gc("membership", (1, 1), 7, deleted=True),
    ]
    got = latest_per_key(batch)
    assert got == [gc("group", (1,), 5), gc("membership", (1, 1), 7, deleted=True), batch[1]]


def test_plan_writes_one_list_per_kind_and_op() -> None:
    beat_old = gc("heartbeat", (), 3, beat_at="old")
    beat_new = gc("heartbeat", (), 9, beat_at="new")
    writes, freshness = plan_writes(
        [
            gc("user", (1,), 1, full_name="a"),
            gc("user", (2,), 2, deleted=True),
            gc("membership", (1, 4), 4, role="member"),
            beat_new,
            beat_old,
        ]
    )
    assert writes == {
        "user.upsert": [{"full_name": "a", "lsn": 1, "tomb": "user:1", "id": 1}],
        "user.delete": [{"lsn": 2, "tomb": "user:2", "id": 2}],
        "membership.upsert": [
            {
                "role": "member",
                "lsn": 4,
                "tomb": "membership:1:4",
                "user_id": 1,
                "group_id": 4,
                "user_tomb": "user:1",
                "group_tomb": "group:4",
            }
        ],
    }
    assert freshness == {"lsn": 9, "beat_at": "new"}


def test_tombstone_keys_are_unique_per_entity() -> None:
    assert tombstone_key("membership", (1, 23)) != tombstone_key("membership", (12, 3))


def test_only_statement_and_schema_errors_are_data_errors() -> None:
    def err(code: str) -> Neo4jError:
        # How the driver builds the error from a server failure (picks the subclass by code).
        return Neo4jError._hydrate_neo4j(code=code, message="refused")

    assert is_data_error(err("Neo.ClientError.Statement.TypeError"))
    assert is_data_error(err("Neo.ClientError.Schema.ConstraintValidationFailed"))
    assert isinstance(err("Neo.ClientError.Statement.SyntaxError"), CypherSyntaxError)
    assert not is_data_error(err("Neo.ClientError.Statement.SyntaxError"))
    assert not is_data_error(err("Neo.ClientError.Security.Unauthorized"))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ServiceUnavailable("down"), True),
        (SessionExpired("gone"), True),
        (ConnectionRefusedError(), True),
        (PoisonRecordError("bad"), False),
        (ValueError("bad"), False),
    ],
)
def test_neo4j_unavailable_is_transient(exc: BaseException, transient: bool) -> None:
    assert projection.is_transient(exc) is transient


def test_graph_event_is_keyed_by_the_lower_id_and_names_the_actor() -> None:
    event = graph_event(type="friend.added", actor=9, payload={"user_id": 9, "other_id": 4})
    assert (event.key, event.user_id, event.source) == ("4", 9, "graph")
    msg = outbox_message(event)
    assert msg.topic == topics.GRAPH_EVENTS and msg.id == str(event.id)
    assert orjson.loads(msg.value)["payload"] == {"user_id": 9, "other_id": 4}
