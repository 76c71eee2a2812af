"""The gateway's response contract: what each route answers, for /openapi.json and its clients.

The services own their bodies; the gateway documents the same shapes here (a service never
imports another service; shapes both sides name verbatim live in campus_common.shapes), and
schemathesis checks every answer against them (tests/e2e/security/test_security_schemathesis.py).
Models allow extra fields, so a service may add one without breaking the contract; the fields
listed are what a client can rely on.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The graph service's shapes, re-published as they are (defined once, in campus_common).
from campus_common.shapes import Graph as Graph
from campus_common.shapes import GraphEdge as GraphEdge
from campus_common.shapes import GraphNode as GraphNode
from campus_common.shapes import Relationship as Relationship
from campus_common.shapes import RelationshipPage as RelationshipPage


class Read(BaseModel):
    model_config = ConfigDict(extra="allow")


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the API (4xx and 5xx) has this one shape."""

    detail: str = Field(description="what went wrong, for a person")
    errors: list[ValidationProblem] | None = Field(
        default=None, description="422 from the gateway's own validation: one entry per problem"
    )
    service: str | None = Field(default=None, description="502/503/504: the service concerned")


ERROR_DESCRIPTIONS = {
    400: "bad request",
    401: "no valid bearer token (or, for /auth/token, wrong email or password)",
    403: "signed in, but not allowed to do this",
    404: "no such resource",
    409: "conflict with the current state (e.g. the email is taken, already a member)",
    413: "request body too large",
    422: "invalid request (parameters or body)",
    429: "over a rate or login limit; see Retry-After",
    502: "a service failed",
    503: "a service or store this request needs is unavailable; try again shortly",
    504: "a service did not answer in time",
}
ERROR_STATUSES = tuple(ERROR_DESCRIPTIONS)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status with the one error body."""
    return {
        code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        for code in (codes or ERROR_STATUSES)
    }


# users and groups ---------------------------------------------------------------------------


class UserView(Read):
    """A profile: id, name and created_at for everyone; email and updated_at only for the user
    themself and the admin."""

    id: int
    full_name: str
    created_at: datetime
    email: str | None = None
    updated_at: datetime | None = None


class UserPage(Read):
    items: list[UserView]
    next_after: int | None = None


class GroupView(Read):
    id: int
    name: str
    course_code: str
    created_at: datetime
    member_count: int = 0


class GroupPage(Read):
    items: list[GroupView]
    next_after: int | None = None


class Membership(Read):
    user_id: int
    group_id: int
    role: Literal["member", "moderator", "admin"]
    joined_at: datetime


class Activity(Read):
    type: str
    at: str | None = None


# posts ---------------------------------------------------------------------------------------


class Attachment(Read):
    type: Literal["link", "file", "image"]
    url: str
    title: str = ""


class Meta(Read):
    likes: int = 0


class AuthorSummary(Read):
    id: int
    full_name: str


class GroupSummary(Read):
    id: int
    name: str
    course_code: str


class Post(Read):
    id: str
    author_id: int
    group_id: int | None
    type: Literal["question", "note", "resource"]
    title: str
    body: str
    tags: list[str]
    attachments: list[Attachment]
    meta: Meta
    created_at: datetime
    updated_at: datetime
    schema_version: int


class EnrichedPost(Post):
    author: AuthorSummary | None = None
    group: GroupSummary | None = None


class PostPage(Read):
    items: list[EnrichedPost]
    next_cursor: str | None = None


class Comment(Read):
    id: str
    post_id: str
    author_id: int
    body: str
    created_at: datetime


class CommentPage(Read):
    items: list[Comment]
    next_cursor: str | None = None


class Like(Read):
    post_id: str
    user_id: int
    likes: int
    liked: bool


class HotPost(Read):
    post_id: str
    score: float


# social --------------------------------------------------------------------------------------


class Friendship(Read):
    user_id: int
    other_id: int
    created_at: datetime | None


class Friend(Read):
    """A friend; `email` only for the admin."""

    id: int
    full_name: str | None
    since: datetime | None
    email: str | None = None


class FriendPage(Read):
    items: list[Friend]
    next_after: int | None = None


class Follow(Read):
    follower_id: int
    followee_id: int
    created_at: datetime | None


class FriendSuggestion(Read):
    id: int
    full_name: str | None
    mutual_friends: int
    common_groups: int
    score: int


class GroupSuggestion(Read):
    id: int
    name: str | None
    course_code: str | None
    friends_in_group: int


# analytics -----------------------------------------------------------------------------------


class TypeCount(Read):
    event_type: str
    events: int


class Point(Read):
    bucket: datetime
    events: int


class Overview(Read):
    storage: Literal["timescaledb", "postgres-partitioned"]
    total_events: int
    newest_event_at: datetime | None
    by_type: list[TypeCount]
    last_hour: list[Point]
    cdc_heartbeat_at: datetime | None


class Timeline(Read):
    bucket: Literal["1m", "5m", "15m", "1h", "1d"]
    type: str | None
    since: datetime
    total: int
    points: list[Point]


class RecentEvent(Read):
    time: datetime
    event_type: str
    source: str
    properties: dict[str, Any]


class UserActivity(Read):
    user_id: int
    total_events: int
    first_event_at: datetime | None
    last_event_at: datetime | None
    by_type: list[TypeCount]
    recent: list[RecentEvent]


class UserCount(Read):
    user_id: int
    events: int


class TopUsers(Read):
    window: str
    since: datetime
    users: list[UserCount]


class DayCount(Read):
    day: date
    active_users: int


class DailyActiveUsers(Read):
    days: int
    points: list[DayCount]


# operations ----------------------------------------------------------------------------------


class PartitionLag(Read):
    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int


class ProjectionState(Read):
    """One projection; a service that cannot be reached shows `state: unreachable` and `error`."""

    name: str
    state: str
    service: str | None = None
    group_id: str | None = None
    topics: list[str] | None = None
    partitions: list[PartitionLag] | None = None
    total_lag: int | None = None
    time_lag_s: float | None = None
    staleness_s: float | None = None
    last_heartbeat_at: float | None = None
    applied_total: int | None = None
    # topic, partition, first/last offset and start time of the batch between fetch and commit
    batch_in_flight: dict[str, Any] | None = None
    last_applied_at: float | None = None
    now: float | None = None
    connected: bool | None = None
    error: dict[str, Any] | None = None


class RedisStatus(Read):
    status: Literal["ok", "down"]
    error: str | None = None
    hits: int | None = None
    misses: int | None = None
    hit_ratio: float | None = None
    keys: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None


class CacheStatus(Read):
    redis: RedisStatus
    projection: ProjectionState


class RateLimitSet(Read):
    scope: Literal["user", "address"]
    subject: str
    limit: int
    window_s: int
    ttl_s: int
