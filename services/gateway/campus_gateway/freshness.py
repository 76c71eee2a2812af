"""The `cache` projection's staleness as the gateway's processes together see it.

Each member of the projection's group notes the CDC heartbeats of the partitions it holds, and
the heartbeat table's changes land on one partition: with several uvicorn workers (or the
cluster topology's two gateways), the members without it saw no beat since the last rebalance,
and their own staleness figure grows although the cache is current. So every process writes its
newest beat to one Redis hash (a field per process, the hash kept alive by the writes), and
/cache-status and /admin/consumers answer from the newest beat of any of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from campus_common.consumer import ProjectionRunner
from campus_gateway.service import Gateway

log = logging.getLogger(__name__)

KEY = "projection:cache:beats"
INTERVAL_S = 1.0
TTL_S = 60


async def publish_forever(gw: Gateway) -> None:
    """Write this process's newest applied heartbeat, once a second."""
    field = str(os.getpid())
    while True:
        runner = gw.projections["cache"]
        if runner.last_beat_at is not None and runner.last_beat_applied_at is not None:
            try:
                pipe = gw.cache.redis.pipeline(transaction=False)
                pipe.hset(KEY, field, f"{runner.last_beat_at},{runner.last_beat_applied_at}")
                pipe.expire(KEY, TTL_S)
                await pipe.execute()
            except Exception as exc:  # Redis down: the local figure still answers
                log.debug("cache freshness: %r", exc)
        await asyncio.sleep(INTERVAL_S)


async def shared(gw: Gateway, described: dict[str, Any]) -> dict[str, Any]:
    """`described` (projection_api.describe of the cache) with the newest beat of any process."""
    runner: ProjectionRunner[Any] = gw.projections["cache"]
    beat_at, applied_at = runner.last_beat_at, runner.last_beat_applied_at
    try:
        for value in (await gw.cache.redis.hgetall(KEY)).values():
            at, applied = (
                float(x) for x in (value.decode() if isinstance(value, bytes) else value).split(",")
            )
            if beat_at is None or at > beat_at:
                beat_at, applied_at = at, applied
    except Exception as exc:  # Redis down: this process's own figure
        log.debug("cache freshness: %r", exc)
    if beat_at is None or applied_at is None:
        return described
    # As ProjectionRunner.staleness: the newest beat's delay, or how overdue the next one is.
    overdue = time.time() - beat_at - runner.heartbeat_interval_s
    staleness = round(max(applied_at - beat_at, overdue, 0.0), 3)
    return {**described, "staleness_s": staleness, "last_heartbeat_at": beat_at}
