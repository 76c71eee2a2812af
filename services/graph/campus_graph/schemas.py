"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from campus_common.shapes import Graph as Graph
from campus_common.shapes import GraphEdge as GraphEdge
from campus_common.shapes import GraphNode as GraphNode
from campus_common.shapes import Relationship as Relationship
from campus_common.shapes import RelationshipPage as RelationshipPage
from campus_common.web import MAX_ID

Strategy = Literal["mutual", "groups", "combined"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FollowCreate(Strict):
    follower_id: int = Field(gt=0, le=MAX_ID)
    followee_id: int = Field(gt=0, le=MAX_ID)


class FriendshipRead(BaseModel):
    user_id: int
    other_id: int
    created_at: datetime | None


class FollowRead(BaseModel):
    follower_id: int
    followee_id: int
    created_at: datetime | None


class FriendRead(BaseModel):
    id: int
    # None while the user's own change has not reached the graph yet.
    full_name: str | None
    email: str | None
    since: datetime | None


class FriendPage(BaseModel):
    items: list[FriendRead]
    next_after: int | None = None


class FriendSuggestion(BaseModel):
    id: int
    full_name: str | None
    mutual_friends: int
    common_groups: int
    score: int


class GroupSuggestion(BaseModel):
    id: int
    name: str | None
    course_code: str | None
    friends_in_group: int
