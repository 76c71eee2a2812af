"""Rebuilding the `cache` projection while several gateway processes each run a member of it.

A rebuild rewinds the consumer group to the first offsets, a commit Kafka refuses while the
group has another member. Each uvicorn worker of the gateway (CAMPUS_GATEWAY_WORKERS), and each
gateway of the cluster topology, is one. So the process asked to rebuild first sets a Redis key
that every gateway process watches: the others stop their member (leaving the group) while the
key exists, and start a fresh member once it is gone. The key expires on its own, so a leader
that dies mid-way holds the others back for at most `LEASE_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from campus_common import projection_api
from campus_common.consumer import ProjectionRunner
from campus_common.errors import ConflictError, UnavailableError
from campus_gateway.service import Gateway

log = logging.getLogger(__name__)

NAME = "cache"
KEY = "projection:cache:rebuild"
LEASE_S = 300
WATCH_INTERVAL_S = 0.5
# How long the leader waits for the other members to leave the group.
LEAVE_TIMEOUT_S = 45.0


class CacheRebuild:
    def __init__(self, gw: Gateway, new_runner: Callable[[], ProjectionRunner[Any]]) -> None:
        self.gw = gw
        self.new_runner = new_runner
        self.leading = False
        self.stepped_aside = False

    @property
    def runner(self) -> ProjectionRunner[Any]:
        return self.gw.projections[NAME]

    async def watch_forever(self) -> None:
        """Step aside while another process rebuilds; come back with a fresh member after."""
        while True:
            try:
                await self._watch_once()
            except Exception as exc:  # Redis down: keep the member as it is, look again later
                log.debug("cache rebuild watch: %r", exc)
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _watch_once(self) -> None:
        if self.leading:
            return
        underway = bool(await self.gw.cache.redis.exists(KEY))
        if underway and not self.stepped_aside:
            self.stepped_aside = True
            log.info("another gateway process rebuilds the cache: this one leaves the group")
            await self.runner.stop()
        elif not underway and self.stepped_aside:
            runner = self.new_runner()
            self.gw.projections[NAME] = runner
            self.stepped_aside = False
            await runner.start()
            log.info("cache rebuild over: this process joins the group again")

    async def rebuild(self) -> None:
        """Rebuild as the group's only member, the other gateway processes stepped aside."""
        redis = self.gw.cache.redis
        if self.stepped_aside or not await redis.set(KEY, uuid.uuid4().hex, nx=True, ex=LEASE_S):
            raise ConflictError("a rebuild of the cache projection is already under way")
        self.leading = True
        try:
            deadline = time.monotonic() + LEAVE_TIMEOUT_S
            while (others := await _others(self.runner)) > 0:
                if time.monotonic() > deadline:
                    raise ConflictError(
                        f"{others} other member(s) of the cache projection's group did not leave "
                        f"within {LEAVE_TIMEOUT_S:g} s; nothing was changed"
                    )
                await asyncio.sleep(WATCH_INTERVAL_S)
            await projection_api.rebuild_alone(self.runner)
        except KafkaError as exc:
            raise UnavailableError(f"kafka unreachable, the cache is unchanged: {exc}") from exc
        finally:
            self.leading = False
            await redis.delete(KEY)


async def _others(runner: ProjectionRunner[Any]) -> int:
    return await projection_api.group_members(runner) - (1 if runner.running else 0)
