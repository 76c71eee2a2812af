"""HTTP control of the projections a service runs: state, lag, pause, resume."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from campus_common.consumer import ProjectionRunner
from campus_common.errors import ConflictError, NotFoundError, UnavailableError
from campus_common.internal_auth import privileged_caller

router = APIRouter(prefix="/projections", tags=["projections"])


class PartitionRead(BaseModel):
    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int


class ProjectionRead(BaseModel):
    """What `describe` answers (the gateway adds `service` and, for its own, `connected`)."""

    model_config = ConfigDict(extra="allow")

    name: str
    group_id: str
    state: str
    topics: list[str]
    partitions: list[PartitionRead]
    total_lag: int
    time_lag_s: float | None
    staleness_s: float | None
    last_heartbeat_at: float | None
    applied_total: int
    last_applied_at: float | None
    now: float


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
        "batch_in_flight": runner.in_flight,
        "last_applied_at": runner.last_applied_at,
        # The traced writes that waited longest in Kafka lately; the dashboard links their traces.
        "slowest_writes": [dataclasses.asdict(w) for w in runner.recent_writes.slowest()],
        "now": time.time(),
    }


async def group_members(runner: ProjectionRunner[Any]) -> int:
    """Members of the projection's consumer group now, this instance included if it runs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=runner.kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([runner.group_id])
    finally:
        await admin.close()
    return sum(len(g["members"]) for r in described for g in r.to_object()["groups"])


async def rebuild_alone(runner: ProjectionRunner[Any]) -> None:
    """Rebuild, if this instance is the group's only member; 409 otherwise.

    The rewind is a commit by the group, which Kafka refuses while another member (another
    uvicorn worker of the gateway, another instance on the cluster topology) holds partitions:
    refused there, the rebuild would have stopped this instance's consumer and left it stopped.
    """
    try:
        others = await group_members(runner) - (1 if runner.running else 0)
    except KafkaError as exc:
        raise UnavailableError(f"kafka unreachable, the projection is unchanged: {exc}") from exc
    if others > 0:
        raise ConflictError(
            f"projection {runner.projection.name} has {others} other member(s) in its group "
            f"{runner.group_id}: a rebuild needs one instance (CAMPUS_GATEWAY_WORKERS=1 for the "
            "gateway's, the single topology)"
        )
    try:
        await runner.rebuild()
    except NotImplementedError as exc:
        raise ConflictError(str(exc)) from exc


async def set_paused(runner: ProjectionRunner[Any], paused: bool) -> None:
    """Pause or resume every instance of the projection; Kafka unreachable is a 503."""
    try:
        await runner.set_paused(paused)
    except KafkaError as exc:
        raise UnavailableError(f"kafka unreachable, the projection is unchanged: {exc}") from exc


@router.get("", response_model=list[ProjectionRead])
async def list_projections(request: Request) -> list[dict[str, Any]]:
    """Every projection this service runs."""
    return [await describe(r) for r in _runners(request).values()]


@router.get("/{name}", response_model=ProjectionRead)
async def get_projection(name: str, request: Request) -> dict[str, Any]:
    return await describe(_get(request, name))


@router.post("/{name}/pause", response_model=ProjectionRead)
async def pause(name: str, request: Request) -> dict[str, Any]:
    """Stop applying; Kafka keeps the records, lag grows."""
    runner = _get(request, name)
    await set_paused(runner, True)
    return await describe(runner)


@router.post("/{name}/rebuild", status_code=202, response_model=ProjectionRead)
async def rebuild(name: str, request: Request) -> dict[str, Any]:
    """Empty the store and replay every record from the start (lag shows the progress)."""
    _get(request, name)
    # A service whose projection runs in several of its processes coordinates them itself (the
    # gateway's workers: campus_gateway.rebuild); the others rebuild here, alone in the group.
    rebuilder = getattr(request.app.state, "rebuilders", {}).get(name)
    await (rebuilder() if rebuilder is not None else rebuild_alone(_get(request, name)))
    return await describe(_get(request, name))


@router.post("/{name}/resume", response_model=ProjectionRead)
async def resume(name: str, request: Request) -> dict[str, Any]:
    """Catch up from the committed offsets."""
    runner = _get(request, name)
    await set_paused(runner, False)
    return await describe(runner)


# What an internal service mounts: the same routes, for the operator or the gateway's admin only.
internal_router = APIRouter(dependencies=[Depends(privileged_caller)])
internal_router.include_router(router)
