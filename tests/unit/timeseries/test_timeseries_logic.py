"""The time-series service's pure parts: event mapping, dedupe keys, validation, error triage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka.structs import ConsumerRecord

from campus_common import topics
from campus_common.errors import InvalidError
from campus_common.events import ChangeRecord, Event, Heartbeat
from campus_timeseries.projection import (
    EventRow,
    TimeseriesProjection,
    clean,
    from_change,
    from_event,
    parse_time,
    sanitize,
)
from campus_timeseries.service import parse_window, timeline_start

pytestmark = pytest.mark.unit

USER = {
    "id": 7,
    "email": "ada@university.edu",
    "full_name": "Ada",
    "created_at": "2026-11-02T03:04:05.123456Z",
    "updated_at": "2026-11-02T03:04:05.123456Z",
}


def change(
    op: str,
    *,
    after: Any = None,
    before: Any = None,
    table: str = "users",
    lsn: int = 1000,
    ts_ms: int = 1_795_000_000_000,
) -> ChangeRecord:
    return ChangeRecord.model_validate(
        {
            "op": op,
            "before": before,
            "after": after,
            "source": {"table": table, "ts_ms": ts_ms, "lsn": lsn, "txId": 5},
        }
    )


def record(topic: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 0, 0, 0, b"k", value, None, 0, 0, [])


def test_a_created_user_is_keyed_by_its_id_at_its_creation_time() -> None:
    row = from_change(topics.USERS, change("c", after=USER))
    assert row == EventRow(
        time=datetime(2026, 11, 2, 3, 4, 5, 123456, tzinfo=UTC),
        user_id=7,
        event_type="user.created",
        properties=USER,
        source="cdc:users",
        dedupe_key="cdc:users:created:7",
    )


def test_a_resnapshot_read_is_the_same_event_as_the_create() -> None:
    # A new snapshot has a new LSN and a new ts_ms: neither may change the key or the time.
    created = from_change(topics.USERS, change("c", after=USER, lsn=10, ts_ms=1_795_000_000_000))
    read = from_change(topics.USERS, change("r", after=USER, lsn=99_999, ts_ms=1_796_000_000_000))
    assert isinstance(created, EventRow) and isinstance(read, EventRow)
    assert (read.dedupe_key, read.time, read.event_type) == (
        created.dedupe_key,
        created.time,
        created.event_type,
    )


def test_updates_are_keyed_by_lsn_and_timed_at_commit() -> None:
    first = from_change(topics.USERS, change("u", after=USER, lsn=2000))
    again = from_change(topics.USERS, change("u", after=USER, lsn=2000))
    later = from_change(topics.USERS, change("u", after=USER, lsn=3000))
    assert isinstance(first, EventRow) and isinstance(later, EventRow)
    assert first == again
    assert first.dedupe_key == "cdc:users:updated:2000:7" != later.dedupe_key
    assert first.time == datetime.fromtimestamp(1_795_000_000, tz=UTC)
    assert first.event_type == "user.updated"


def test_a_membership_delete_keeps_only_the_key_and_names_the_user() -> None:
    before = {"user_id": 3, "group_id": 9, "role": "", "joined_at": "1970-01-01T00:00:00Z"}
    row = from_change(topics.MEMBERSHIPS, change("d", before=before, table="group_memberships"))
    assert isinstance(row, EventRow)
    assert row.event_type == "membership.deleted"
    assert row.user_id == 3
    assert row.properties == {"user_id": 3, "group_id": 9}
    assert row.dedupe_key == "cdc:group_memberships:deleted:1000:3:9"


def test_a_group_has_no_actor() -> None:
    group = {"id": 4, "name": "DB", "course_code": "CS-1", "created_at": USER["created_at"]}
    row = from_change(topics.GROUPS, change("c", after=group, table="groups"))
    assert isinstance(row, EventRow)
    assert (row.event_type, row.user_id, row.dedupe_key) == (
        "group.created",
        None,
        "cdc:groups:created:4",
    )


def test_heartbeats_are_not_events() -> None:
    beat = change("u", after={"id": 1, "beat_at": "2026-11-22T02:00:00.5Z"}, table="heartbeats")
    raw = orjson.dumps(beat.model_dump(mode="json", by_alias=True))
    projection = TimeseriesProjection(pool=None)  # type: ignore[arg-type]
    assert projection.decode(record(topics.HEARTBEATS, raw)) == Heartbeat(
        beat_at=datetime(2026, 11, 22, 2, 0, 0, 500000, tzinfo=UTC), lsn=beat.position
    )


def test_truncates_carry_no_event() -> None:
    assert from_change(topics.USERS, change("t")) is None


def test_a_change_without_its_creation_time_is_poison() -> None:
    with pytest.raises(KeyError):
        from_change(topics.USERS, change("c", after={"id": 7}))


def test_password_fields_are_never_stored_at_any_depth() -> None:
    cleaned = sanitize(
        {
            "id": 1,
            "password_hash": "x",
            "Password": "y",
            "nested": {"hashed_password": "z", "keep": "a\x00b"},
            "list": [{"password": 1}],
        }
    )
    assert cleaned == {"id": 1, "nested": {"keep": "ab"}, "list": [{}]}
    row = from_change(topics.USERS, change("c", after={**USER, "password_hash": "secret"}))
    assert isinstance(row, EventRow) and "password_hash" not in row.properties


def test_clean_skips_clean_payloads_and_sanitizes_the_rest() -> None:
    payload = {"title": "hello", "tags": ["a"], "n": 1}
    assert clean(payload) is payload
    assert clean({"title": "reset your password"}) == {"title": "reset your password"}
    assert clean({"a": {"Password_hash": 1}, "b": "x\x00y"}) == {"a": {}, "b": "xy"}


def test_a_domain_event_is_keyed_by_its_id() -> None:
    event = Event(
        type="post.liked",
        source="documents",
        key="p1",
        user_id=5,
        occurred_at=datetime(2026, 11, 22, 1, 2, 3),
        payload={"post_id": "p1"},
    )
    row = from_event(event)
    assert row.dedupe_key == str(event.id)
    assert row.time == datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)  # naive taken as UTC
    assert (row.event_type, row.user_id, row.source) == ("post.liked", 5, "documents")
    assert row.properties == {"post_id": "p1"}


@pytest.mark.parametrize("bad", [0, -1, 2**63])
def test_a_user_id_outside_bigint_is_poison(bad: int) -> None:
    with pytest.raises(ValueError, match="user id"):
        from_event(Event(type="post.liked", source="d", key="k", user_id=bad))


def test_an_event_without_a_type_is_poison() -> None:
    with pytest.raises(ValueError):
        from_event(Event(type="  ", source="d", key="k"))


def test_decode_routes_by_topic_and_skips_tombstones() -> None:
    projection = TimeseriesProjection(pool=None)  # type: ignore[arg-type]
    event = Event(id=uuid.uuid4(), type="friend.added", source="graph", key="1", user_id=1)
    decoded = projection.decode(record(topics.GRAPH_EVENTS, event.to_bytes()))
    assert isinstance(decoded, EventRow) and decoded.dedupe_key == str(event.id)
    cdc = orjson.dumps(
        {"op": "c", "after": USER, "source": {"table": "users", "ts_ms": 1, "lsn": 5}}
    )
    decoded = projection.decode(record(topics.USERS, cdc))
    assert isinstance(decoded, EventRow) and decoded.event_type == "user.created"
    assert projection.decode(record(topics.USERS, None)) is None
    with pytest.raises(ValueError):
        projection.decode(record(topics.DOCUMENT_EVENTS, b"not json"))


def test_data_errors_are_poison_and_outages_are_retried() -> None:
    projection = TimeseriesProjection(pool=None)  # type: ignore[arg-type]
    assert not projection.is_transient(psycopg.errors.UntranslatableCharacter())
    assert not projection.is_transient(psycopg.errors.NumericValueOutOfRange())
    assert not projection.is_transient(ValueError())
    assert projection.is_transient(psycopg.OperationalError())
    assert projection.is_transient(psycopg.errors.InsufficientPrivilege())


def test_parse_time_accepts_iso_text_and_epoch_microseconds() -> None:
    assert parse_time("2026-11-22T02:00:00Z") == datetime(2026, 11, 22, 2, tzinfo=UTC)
    assert parse_time(1_000_000) == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time(None)


@pytest.mark.parametrize(
    ("window", "span"),
    [("90m", timedelta(minutes=90)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7))],
)
def test_parse_window(window: str, span: timedelta) -> None:
    assert parse_window(window) == span


@pytest.mark.parametrize("window", ["", "24", "h", "1w", "0h", "-1h", "366d", "1.5h", "24 h"])
def test_parse_window_rejects_what_it_cannot_read(window: str) -> None:
    with pytest.raises(InvalidError):
        parse_window(window)


def test_timeline_start() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    minute = timedelta(minutes=1)
    assert timeline_start(now=now, width=minute, since=None) == now - 59 * minute
    assert timeline_start(now=now, width=minute, since=datetime(2026, 11, 22, 11)) == datetime(
        2026, 11, 22, 11, tzinfo=UTC
    )
    with pytest.raises(InvalidError, match="too far back"):
        timeline_start(now=now, width=minute, since=now - timedelta(days=2))
