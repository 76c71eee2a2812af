"""Response bodies of the analytics API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel

Bucket = Literal["1m", "5m", "15m", "1h", "1d"]
Storage = Literal["timescaledb", "postgres-partitioned"]


class TypeCount(BaseModel):
    event_type: str
    events: int


class Point(BaseModel):
    bucket: datetime
    events: int


class Overview(BaseModel):
    storage: Storage
    total_events: int
    newest_event_at: datetime | None
    by_type: list[TypeCount]
    # One point a minute over the last hour, empty minutes included.
    last_hour: list[Point]
    # The newest CDC heartbeat applied: changes committed before it are in the counts.
    cdc_heartbeat_at: datetime | None


class Timeline(BaseModel):
    bucket: Bucket
    type: str | None
    since: datetime
    total: int
    points: list[Point]


class RecentEvent(BaseModel):
    time: datetime
    event_type: str
    source: str
    properties: dict[str, Any]


class UserActivity(BaseModel):
    user_id: int
    total_events: int
    first_event_at: datetime | None
    last_event_at: datetime | None
    by_type: list[TypeCount]
    recent: list[RecentEvent]


class UserCount(BaseModel):
    user_id: int
    events: int


class TopUsers(BaseModel):
    window: str
    since: datetime
    users: list[UserCount]


class DayCount(BaseModel):
    day: date
    active_users: int


class DailyActiveUsers(BaseModel):
    days: int
    points: list[DayCount]
