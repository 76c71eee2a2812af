"""The `cache` projection as the whole consumer group stands, whichever gateway process answers.

With several uvicorn workers (CAMPUS_GATEWAY_WORKERS), or the cluster topology's two gateways,
each process runs one member of the group and holds some of the partitions. What
`projection_api.describe` answers is that member's share: its partitions' lag, and the CDC
heartbeats it saw (the heartbeat table's changes land on one partition, so the members without
it see none, and their own staleness figure grows although the cache is current). An admin
asking for the cache's lag or staleness means the cache's, so /admin/consumers, /cache-status
and the dashboard get:
- the lag over every partition of the projection's topics: the group's committed offsets
  (kept by Kafka, whoever committed them) against the end offsets, and the age of the oldest
  record not applied on any of them;
- the staleness from the newest heartbeat any process applied: each writes its newest to one
  Redis hash (a field per process; the hash expires unless written).
`applied_total` and `slowest_writes` stay the answering member's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from campus_common.consumer import PartitionStatus, ProjectionRunner
from campus_common.kafka import topic_partitions
from campus_gateway.service import Gateway

log = logging.getLogger(__name__)

BEATS_KEY = "projection:cache:beats"
INTERVAL_S = 1.0
TTL_S = 60


async def publish_beats_forever(gw: Gateway) -> None:
    """Write this process's newest applied heartbeat, once a second."""
    field = str(os.getpid())
    while True:
        runner = gw.projections["cache"]
        if runner.last_beat_at is not None and runner.last_beat_applied_at is not None:
            try:
                pipe = gw.cache.redis.pipeline(transaction=False)
                pipe.hset(BEATS_KEY, field, f"{runner.last_beat_at},{runner.last_beat_applied_at}")
                pipe.expire(BEATS_KEY, TTL_S)
                await pipe.execute()
            except Exception as exc:  # Redis down: the local figure still answers
                log.debug("cache heartbeats: %r", exc)
        await asyncio.sleep(INTERVAL_S)


async def describe(gw: Gateway, described: dict[str, Any]) -> dict[str, Any]:
    """`described` (projection_api.describe of the cache) with the group's lag and staleness."""
    runner: ProjectionRunner[Any] = gw.projections["cache"]
    out = dict(described)
    try:
        parts = await _group_partitions(runner)
    except Exception as exc:  # Kafka unreachable: the member's own figures
        log.debug("cache group lag: %r", exc)
    else:
        if parts is not None:
            out["partitions"] = [dataclasses.asdict(p) for p in parts]
            out["total_lag"] = sum(p.lag for p in parts)
            out["time_lag_s"] = await runner.time_lag(parts)
    staleness = await _staleness(gw, runner)
    if staleness is not None:
        out["staleness_s"], out["last_heartbeat_at"] = staleness
    return out


async def _group_partitions(runner: ProjectionRunner[Any]) -> list[PartitionStatus] | None:
    consumer = runner.consumer
    if consumer is None:
        return None
    tps = await topic_partitions(runner.kafka, runner.projection.topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=runner.kafka.bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(runner.group_id)
    finally:
        await admin.close()
    ends = await consumer.end_offsets(tps)
    out = []
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        end = ends.get(tp, 0)
        out.append(PartitionStatus(tp.topic, tp.partition, done, end, max(end - done, 0)))
    return out


async def _staleness(gw: Gateway, runner: ProjectionRunner[Any]) -> tuple[float, float] | None:
    beat_at, applied_at = runner.last_beat_at, runner.last_beat_applied_at
    try:
        for value in (await gw.cache.redis.hgetall(BEATS_KEY)).values():
            text = value.decode() if isinstance(value, bytes) else str(value)
            at, applied = (float(x) for x in text.split(","))
            if beat_at is None or at > beat_at:
                beat_at, applied_at = at, applied
    except Exception as exc:  # Redis down: this process's own figure
        log.debug("cache heartbeats: %r", exc)
    if beat_at is None or applied_at is None:
        return None
    # As ProjectionRunner.staleness: the newest beat's delay, or how overdue the next one is.
    overdue = time.time() - beat_at - runner.heartbeat_interval_s
    return round(max(applied_at - beat_at, overdue, 0.0), 3), beat_at
