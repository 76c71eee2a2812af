"""HTTP control of the projections a service runs: state, lag, pause, resume."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from campus_common.consumer import ProjectionRunner
from campus_common.errors import ConflictError, NotFoundError

router = APIRouter(prefix="/projections", tags=["projections"])


def _runners(request: Request) -> Mapping[str, ProjectionRunner[Any]]:
    return request.app.state.projections  # type: ignore[no-any-return]


def _get(request: Request, name: str) -> ProjectionRunner[Any]:
    runner = _runners(request).get(name)
    if runner is None:
        raise NotFoundError(f"no projection named {name!r} here")
    return runner


async def describe(runner: ProjectionRunner[Any]) -> dict[str, Any]:
    """State and per-partition lag of one projection (this instance's partitions)."""
    parts = await runner.partitions()
    return {
        "name": runner.projection.name,
        "group_id": runner.group_id,
        "state": "paused" if runner.paused else ("running" if runner.running else "stopped"),
        "topics": list(runner.projection.topics),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag": p.lag,
            }
            for p in parts
        ],
        "total_lag": sum(p.lag for p in parts),
        "time_lag_s": await runner.time_lag(parts),
        "staleness_s": runner.staleness(),
        "last_heartbeat_at": runner.last_beat_at,
        "applied_total": runner.applied_total,
        "last_applied_at": runner.last_applied_at,
        # The traced writes that waited longest in Kafka lately; the dashboard links their traces.
        "slowest_writes": [dataclasses.asdict(w) for w in runner.recent_writes.slowest()],
        "now": time.time(),
    }


@router.get("")
async def list_projections(request: Request) -> list[dict[str, Any]]:
    """Every projection this service runs."""
    return [await describe(r) for r in _runners(request).values()]


@router.get("/{name}")
async def get_projection(name: str, request: Request) -> dict[str, Any]:
    return await describe(_get(request, name))


@router.post("/{name}/pause")
async def pause(name: str, request: Request) -> dict[str, Any]:
    """Stop applying; Kafka keeps the records, lag grows."""
    runner = _get(request, name)
    runner.pause()
    return await describe(runner)


@router.post("/{name}/rebuild", status_code=202)
async def rebuild(name: str, request: Request) -> dict[str, Any]:
    """Empty the store and replay every record from the start (lag shows the progress)."""
    runner = _get(request, name)
    try:
        await runner.rebuild()
    except NotImplementedError as exc:
        raise ConflictError(str(exc)) from exc
    return await describe(runner)


@router.post("/{name}/resume")
async def resume(name: str, request: Request) -> dict[str, Any]:
    """Catch up from the committed offsets."""
    runner = _get(request, name)
    runner.resume()
    return await describe(runner)
