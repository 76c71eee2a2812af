"""The trace context across the CDC hop and Kafka headers, and the projections' apply spans."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from campus_common import consumer, telemetry
from campus_common.config import KafkaConfig
from campus_common.consumer import Delivered, Projection, ProjectionRunner, Route

pytestmark = pytest.mark.unit

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"


def change(
    traceparent: str | None, *, offset: int = 0, topic: str = "campus.public.users"
) -> ConsumerRecord[bytes, bytes]:
    # The JSON exactly as Debezium's JsonConverter writes it (compact, schemas disabled).
    after = {"id": 7, "email": "a@b.cd", "trace_context": traceparent}
    value = orjson.dumps({"before": None, "after": after, "source": {"txId": 1}, "op": "c"})
    return ConsumerRecord(topic, 0, offset, 1_000, 0, b'{"id":7}', value, None, 8, len(value), [])


def test_the_cdc_column_is_read_from_the_raw_change() -> None:
    assert telemetry.record_traceparent([], change(PARENT).value) == PARENT
    assert telemetry.record_traceparent([], change(None).value) is None


def test_a_header_wins_over_the_body() -> None:
    headers = [("traceparent", OTHER.encode())]
    assert telemetry.record_traceparent(headers, change(PARENT).value) == OTHER


def test_a_malformed_context_is_no_context() -> None:
    assert telemetry.context_from_traceparent("00-not-a-trace-01") is None
    assert telemetry.context_from_traceparent(None) is None
    assert telemetry.record_parent([], change(PARENT).value) is not None


def test_recent_writes_keep_the_slowest_of_a_bounded_window() -> None:
    recent = telemetry.RecentWrites(size=3)
    for i, wait in enumerate([3.0, 0.5, 0.1, 2.0]):
        recent.add(telemetry.AppliedWrite(f"t{i}", "topic", "k", wait, 0.0))
    # The 3.0 s write was the first of four in a window of three: it has left the window.
    assert [w.trace_id for w in recent.slowest(2)] == ["t3", "t1"]


class _Noop(Projection[bytes]):
    name = "test"
    routes = {"campus.public.users": Route(bytes, bytes)}

    async def apply(self, batch: Sequence[Delivered[bytes]]) -> None:
        return None


def _runner() -> tuple[ProjectionRunner[bytes], InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runner = ProjectionRunner(_Noop(), kafka=KafkaConfig(bootstrap_servers="127.0.0.1:1"))
    runner._tracer = provider.get_tracer("test")
    return runner, exporter


@pytest.fixture(autouse=True)
def _tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # As after setup() with tracing on, without installing a global provider in the test run.
    monkeypatch.setattr(telemetry, "enabled", lambda: True)


def _delivered(records: list[ConsumerRecord[bytes, bytes]]) -> list[Delivered[bytes]]:
    return [Delivered(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) for r in records]


def test_one_change_is_applied_in_a_child_of_the_request() -> None:
    runner, exporter = _runner()
    records = [change(PARENT)]
    with runner._traced(records, _delivered(records)):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert runner.recent_writes.slowest()[0].trace_id == TRACE


def test_a_change_without_context_starts_its_own_trace() -> None:
    runner, exporter = _runner()
    records = [change(None)]
    with runner._traced(records, _delivered(records)):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE


def test_a_batch_links_every_write_and_each_write_gets_a_span_in_its_own_trace() -> None:
    runner, exporter = _runner()
    records = [change(PARENT, offset=0), change(OTHER, offset=1), change(None, offset=2)]
    with runner._traced(records, _delivered(records)):
        pass
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if "messaging.kafka.offset" not in (s.attributes or {})]
    assert batch.parent is None
    assert {format(link.context.trace_id, "032x") for link in batch.links} == {
        TRACE,
        "11111111111111111111111111111111",
    }
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 3
    per_write = [s for s in spans if s is not batch]
    traced = [s for s in per_write if s.parent is not None]
    assert sorted(format(s.context.trace_id, "032x") for s in traced) == sorted(
        [TRACE, "11111111111111111111111111111111"]
    )
    # The untraced change (a psql UPDATE) starts a trace of its own, named by its key.
    (untraced,) = [s for s in per_write if s.parent is None]
    assert format(untraced.context.trace_id, "032x") not in {TRACE, "1" * 32}
    assert untraced.context.trace_id != batch.context.trace_id
    assert untraced.attributes is not None
    assert untraced.attributes["messaging.kafka.offset"] == 2
    for span in per_write:
        assert [link.context.span_id for link in span.links] == [batch.context.span_id]


def test_a_backlog_sized_batch_leaves_untraced_changes_to_the_batch_trace() -> None:
    runner, exporter = _runner()
    n = consumer.UNTRACED_SPANS_PER_BATCH + 1
    records = [change(None, offset=i) for i in range(n)]
    with runner._traced(records, _delivered(records)):
        pass
    (batch,) = exporter.get_finished_spans()
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == n


def test_heartbeats_are_not_traced() -> None:
    runner, exporter = _runner()
    records = [change(PARENT, topic="campus.public.heartbeats")]
    with runner._traced(records, _delivered(records)):
        pass
    assert exporter.get_finished_spans() == ()


def test_root_database_calls_are_housekeeping_and_dropped() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=telemetry.sampler(1.0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("SELECT 1", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER),
        tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT),
    ):
        pass
    with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
        pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == [
        "INSERT",
        "POST /users",
        "send",
    ]
