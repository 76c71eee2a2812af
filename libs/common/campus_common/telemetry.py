"""Tracing for every service: the OpenTelemetry SDK exporting to Zipkin, and the trace context
across the CDC hop.

One write is one trace: the gateway's request, its call to a service, the service's SQL, and
then, after Debezium and Kafka, each projection applying the change. PostgreSQL carries the
context in a `trace_context` column of the written row (sql/004_trace_context.sql says why a
column and not a logical decoding message); the documents and graph services' own events carry
it in Kafka headers. `setup()` runs once per process from a service's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from pydantic import BaseModel

log = logging.getLogger(__name__)

LIBRARIES = ("asyncpg", "psycopg", "pymongo", "redis", "aiokafka", "neo4j")
TRACE_COLUMN = "trace_context"
TRACEPARENT = "traceparent"
# Requests that are not work: probes, scrapes, and the dashboard's endless event stream (one span
# that never ends would hold every frame's calls).
EXCLUDED_URLS = "health,metrics,dashboard/stream,dashboard/vendor"
_W3C = TraceContextTextMapPropagator()


class TracingConfig(BaseModel):
    """Where spans go and how many are kept."""

    enabled: bool = True
    zipkin_endpoint: str = "http://127.0.0.1:9411/api/v2/spans"
    sample_ratio: float = 1.0


class _DropHousekeeping(Sampler):
    """Keeps root spans of requests, sends and applies; drops root database calls.

    A database call with no request around it is a background poll (the outbox relays, the slot
    exporter, health checks): thousands of one-span traces that would bury the writes in Zipkin.
    A send with no request around it is kept: it is an event queued outside the API, and the
    projections continue its trace.
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"DropHousekeeping{{{self._ratio.get_description()}}}"


def sampler(ratio: float) -> Sampler:
    """`ratio` of new traces, minus housekeeping; a continued trace follows its parent."""
    return ParentBased(root=_DropHousekeeping(ratio))


@dataclass
class _State:
    config: TracingConfig
    service: str
    providers: dict[str, TracerProvider]


_state: _State | None = None
_lock = threading.Lock()


def _provider(config: TracingConfig, service: str) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        sampler=sampler(config.sample_ratio),
    )
    provider.add_span_processor(
        BatchSpanProcessor(ZipkinExporter(endpoint=config.zipkin_endpoint, timeout=5))
    )
    return provider


def setup(*, service: str, config: TracingConfig, libraries: Collection[str] = ()) -> None:
    """Install the global tracer provider for `service` and instrument its client libraries.

    Once per process: a second call (tests that run a lifespan twice) changes nothing.
    httpx is always instrumented (every service calls another); FastAPI is instrumented by
    create_app, because middleware cannot be added once the app runs.
    """
    global _state
    with _lock:
        if _state is not None:
            return
        if not config.enabled:
            # Off means off: no provider (the API's tracers stay no-ops) and no instrumentation.
            _state = _State(config=config, service=service, providers={})
            log.info("tracing off")
            return
        provider = _provider(config, service)
        trace.set_tracer_provider(provider)
        _state = _State(config=config, service=service, providers={service: provider})
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()
    for lib in libraries:
        _instrument(lib)
    log.info("tracing to %s (sampling %g%%)", config.zipkin_endpoint, config.sample_ratio * 100)


def _instrument(lib: str) -> None:
    # Imported here: each instrumentation imports its library, which not every service has.
    if lib == "asyncpg":
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    elif lib == "psycopg":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(enable_commenter=False)
    elif lib == "pymongo":
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        PymongoInstrumentor().instrument()
    elif lib == "redis":
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument()
    elif lib == "aiokafka":
        import aiokafka
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
        from opentelemetry.instrumentation.utils import unwrap

        # The producer side only (a send span whose context goes into the record's headers).
        # The consumer side is ours (ProjectionRunner): the instrumentation's getmany opens a
        # root trace per poll and per heartbeat record, and cannot read the CDC column.
        AIOKafkaInstrumentor().instrument()
        unwrap(aiokafka.AIOKafkaConsumer, "getone")
        unwrap(aiokafka.AIOKafkaConsumer, "getmany")
    elif lib == "neo4j":
        _instrument_neo4j()
    else:
        raise ValueError(f"no instrumentation for {lib!r}; known: {', '.join(LIBRARIES)}")


def _instrument_neo4j() -> None:
    """Spans around the neo4j driver's query calls (PyPI has no instrumentation for it).

    Every query the graph service sends goes through one of two methods: a managed
    transaction's run() (execute_query and execute_read/write use it) or a session's run().
    The span covers sending the query and receiving its header, not streaming the records.
    """
    import neo4j
    from wrapt import wrap_function_wrapper

    db_tracer = trace.get_tracer("campus.neo4j")

    async def traced_run(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        query = str(args[0] if args else kwargs.get("query", ""))
        operation = query.split(None, 1)[0].upper() if query.strip() else "QUERY"
        attributes: dict[str, str] = {
            "db.system.name": "neo4j",
            "db.operation.name": operation,
            "db.query.text": query[:2000],
        }
        with db_tracer.start_as_current_span(
            f"{operation} neo4j", kind=SpanKind.CLIENT, attributes=attributes
        ):
            return await wrapped(*args, **kwargs)

    wrap_function_wrapper(neo4j.AsyncManagedTransaction, "run", traced_run)
    wrap_function_wrapper(neo4j.AsyncSession, "run", traced_run)


def instrument_app(app: Any) -> None:
    """Trace every request of a FastAPI app (spans go to the provider setup() installs later)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # Without the two internal spans ASGI instrumentation adds per request (`http send`, `http
    # receive`): they say nothing the request's span does not, and cost every request their
    # creation and export (measured with py-spy on the gateway's cached read, issue 16).
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def enabled() -> bool:
    """Whether this process exports spans (setup() ran with tracing on)."""
    return _state is not None and _state.config.enabled


def tracer(name: str, *, service: str | None = None) -> Tracer:
    """A tracer; with `service`, its spans carry that service name (a projection's spans)."""
    if service is None or _state is None or not _state.config.enabled:
        return trace.get_tracer(name)
    with _lock:
        provider = _state.providers.get(service)
        if provider is None:
            provider = _state.providers[service] = _provider(_state.config, service)
    return provider.get_tracer(name)


def shutdown() -> None:
    """Send the spans still buffered (called as a service stops)."""
    if _state is not None:
        for provider in _state.providers.values():
            provider.force_flush(timeout_millis=3000)


# --- the context across the CDC hop and through Kafka headers --------------------------------


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for a row's trace_context column or an outbox."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The remote parent a traceparent names; None when it is missing or malformed."""
    if not traceparent:
        return None
    ctx = _W3C.extract({TRACEPARENT: traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


@contextlib.contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Run the block as a continuation of `traceparent` (the relays publish in its name)."""
    ctx = context_from_traceparent(traceparent)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


_COLUMN_MARK = b'"' + TRACE_COLUMN.encode() + b'":"'
_TRACEPARENT_LEN = 55  # "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex


Headers = Sequence[tuple[str, bytes]] | None


def record_traceparent(headers: Headers, value: bytes | None) -> str | None:
    """The traceparent a Kafka record carries: a header (domain events) or the CDC column.

    The column is found in the raw JSON rather than by parsing it again: the projection parses
    the record already, and JsonConverter writes compact JSON, so the key and its value are
    adjacent. A delete's `before` holds only the key, so deletes carry no context.
    """
    for key, raw in headers or ():
        if key == TRACEPARENT:
            return raw.decode("ascii", "replace")
    if value:
        at = value.find(_COLUMN_MARK)
        if at >= 0:
            start = at + len(_COLUMN_MARK)
            return value[start : start + _TRACEPARENT_LEN].decode("ascii", "replace")
    return None


def record_parent(headers: Headers, value: bytes | None) -> Context | None:
    """The context of the request that wrote a Kafka record; None when it carries none."""
    return context_from_traceparent(record_traceparent(headers, value))


# --- the slowest recent writes each projection applied (for the dashboard) --------------------


@dataclass(frozen=True, slots=True)
class AppliedWrite:
    """One traced record a projection applied, and how long it waited in Kafka."""

    trace_id: str
    topic: str
    key: str
    in_kafka_s: float
    applied_at: float


class RecentWrites:
    """A bounded window of the traced records a projection applied lately."""

    def __init__(self, size: int = 500) -> None:
        self._items: deque[AppliedWrite] = deque(maxlen=size)

    def add(self, item: AppliedWrite) -> None:
        self._items.append(item)

    def slowest(self, n: int = 5) -> list[AppliedWrite]:
        """The `n` records that waited longest between reaching Kafka and being applied."""
        return sorted(self._items, key=lambda w: w.in_kafka_s, reverse=True)[:n]


def trace_id_of(ctx: Context) -> str:
    """The 32-hex trace id of the span in `ctx`."""
    return format(trace.get_current_span(ctx).get_span_context().trace_id, "032x")


def link_to(ctx: Context) -> Link:
    """A link to the span in `ctx` (a batch links every write it applies)."""
    return Link(trace.get_current_span(ctx).get_span_context())


def now_ns() -> int:
    """Wall-clock nanoseconds (span timestamps)."""
    return time.time_ns()
