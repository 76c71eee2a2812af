"""The records the benchmarks make up are ones the real projections accept, and the bench's
own markers (tokens, topics) are read back right."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from bench.cdc import Tokens, _steady_since
from bench.sinks import (
    BenchEvent,
    OnBenchTopic,
    bench_events,
    membership_change,
    membership_rows,
    user_change,
    user_rows,
)
from campus_common import topics
from campus_common.consumer import Delivered, Projection, Route
from campus_graph.projection import GraphChange, GraphProjection
from campus_timeseries.projection import EventRow, TimeseriesProjection

pytestmark = pytest.mark.unit
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def record(topic: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())


def test_membership_changes_decode_in_the_graph_projection() -> None:
    (row,) = membership_rows(10**12, 1, AT)
    change = GraphProjection(None).decode(record(topics.MEMBERSHIPS, membership_change(row)))  # type: ignore[arg-type]
    assert isinstance(change, GraphChange)
    assert change.kind == "membership" and change.key == (10**12, 10**12)
    assert datetime.fromisoformat(change.props["joined_at"]) == AT and change.lsn == row["lsn"]


def test_membership_rows_put_each_user_in_ten_distinct_groups() -> None:
    rows = membership_rows(100, 20, AT)
    assert {r["user_id"] for r in rows} == {100, 101}
    assert len({(r["user_id"], r["group_id"]) for r in rows}) == 20


def test_user_changes_decode_in_the_graph_projection() -> None:
    (row,) = user_rows(10**12, 1, AT)
    change = GraphProjection(None).decode(record(topics.USERS, user_change(row)))  # type: ignore[arg-type]
    assert isinstance(change, GraphChange) and change.kind == "user" and not change.deleted
    assert change.props["email"].endswith("@bench.university.edu")


def test_bench_events_decode_in_the_timeseries_projection() -> None:
    (event,) = bench_events(1, "sink", AT)
    decoded = TimeseriesProjection(None).decode(  # type: ignore[arg-type]
        record(topics.DOCUMENT_EVENTS, event.envelope())
    )
    assert isinstance(decoded, EventRow)
    assert decoded.source == "bench" and decoded.event_type == "bench.sink"
    assert decoded.dedupe_key == event.id and decoded.time == AT
    assert event.row("copy:")[5] == f"copy:{event.id}"


class Recorder(Projection[Any]):
    name = "recorder"

    def __init__(self) -> None:
        self.decoded_from: list[str] = []
        self.applied_from: list[str] = []
        self.routes = {topics.USERS: Route(bytes, self._users)}

    def _users(self, value: bytes) -> bytes:
        self.decoded_from.append(topics.USERS)
        return value

    async def apply(self, batch: Any) -> None:
        self.applied_from += [d.topic for d in batch]


async def test_a_projection_on_a_bench_topic_sees_the_product_topic() -> None:
    inner = Recorder()
    wrapped = OnBenchTopic(inner, topic="bench.x.1", as_topic=topics.USERS)
    assert wrapped.topics == ("bench.x.1",) and wrapped.name == "bench-recorder"
    assert wrapped.decode(record("bench.x.1", b"v")) == b"v"
    await wrapped.apply([Delivered("bench.x.1", 0, 0, 0, None, b"v")])
    assert inner.decoded_from == inner.applied_from == [topics.USERS]


def test_tokens_belong_to_one_run() -> None:
    a, b = Tokens(), Tokens()
    assert a.seq(a.make(42)) == 42
    assert a.seq(b.make(42)) is None
    assert a.seq("Ada Lovelace") is None and a.seq(None) is None


def test_steady_means_caught_up_after_the_load() -> None:
    rows = [
        {"t": 0.0, "lag": 0, "time_lag_s": 0.0},
        {"t": 5.0, "lag": 800, "time_lag_s": 2.0},
        {"t": 11.0, "lag": 300, "time_lag_s": 1.5},
        {"t": 12.0, "lag": 3, "time_lag_s": 0.2},
        {"t": 13.0, "lag": 0, "time_lag_s": 0.0},
    ]
    assert _steady_since(rows, load_start=1.0, load_end=10.0) == 2.0
    assert _steady_since(rows[:3], load_start=1.0, load_end=10.0) is None


def test_bench_event_ids_are_unique() -> None:
    events: list[BenchEvent] = list(bench_events(100, "x", AT))
    assert len({e.id for e in events}) == 100
