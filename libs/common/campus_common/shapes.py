"""Response shapes that a service and the gateway's public contract both name.

The graph service answers with them and the gateway re-publishes them unchanged, so they are
defined once here rather than once per side (services never import each other).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    # Read models: a newer service may add fields the gateway passes on untouched.
    model_config = ConfigDict(extra="allow")


class Relationship(Shape):
    type: Literal["FRIEND", "FOLLOWS"]
    from_id: int
    from_name: str | None
    to_id: int
    to_name: str | None
    created_at: datetime | None


class RelationshipPage(Shape):
    items: list[Relationship]
    next_offset: int | None = None


class GraphNode(Shape):
    id: str
    kind: Literal["user", "group"]
    entity_id: int
    label: str | None


class GraphEdge(Shape):
    source: str
    target: str
    type: Literal["FRIEND", "FOLLOWS", "MEMBER_OF"]


class Graph(Shape):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
