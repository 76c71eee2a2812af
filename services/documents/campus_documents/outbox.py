"""Pending events as they are stored inside documents, and their conversion to the envelope.

A write that changes a document pushes its event onto that document's `outbox` array and sets
`pending: true` in the same single-document update, so the change and its event are stored or
lost together. The relay (relay.py) publishes them and then pulls exactly what it published.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from campus_common.events import SCHEMA_VERSION, Event
from campus_common.telemetry import current_traceparent

SOURCE = "documents"


def now() -> datetime:
    """UTC now at the millisecond precision BSON keeps, so what we return equals what we stored."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def new_event(
    event_type: str, *, key: str, user_id: int, payload: dict[str, Any], at: datetime | None = None
) -> dict[str, Any]:
    """An event ready to be pushed onto a document's outbox (plain BSON types only)."""
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": at or now(),
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "user_id": user_id,
        "payload": payload,
        # The request that queued it: the relay publishes in its name (Kafka headers).
        "traceparent": current_traceparent(),
    }


def to_envelope(stored: dict[str, Any]) -> Event:
    """The Kafka envelope of a stored event; the id is kept, so a republish is a duplicate."""
    occurred_at: datetime = stored["occurred_at"]
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return Event(
        id=uuid.UUID(stored["id"]),
        type=stored["type"],
        occurred_at=occurred_at,
        schema_version=stored.get("schema_version", SCHEMA_VERSION),
        source=SOURCE,
        key=stored["key"],
        user_id=stored.get("user_id"),
        payload=stored["payload"],
    )


def post_payload(post: dict[str, Any]) -> dict[str, Any]:
    """Payload of post.created / post.updated."""
    return {
        "post_id": str(post["_id"]),
        "group_id": post.get("group_id"),
        "author_id": post["author_id"],
        "type": post["type"],
        "title": post["title"],
        "tags": list(post.get("tags", [])),
    }


def post_deleted_payload(post: dict[str, Any]) -> dict[str, Any]:
    return {
        "post_id": str(post["_id"]),
        "group_id": post.get("group_id"),
        "author_id": post["author_id"],
    }


def post_liked_payload(post: dict[str, Any], *, user_id: int) -> dict[str, Any]:
    return {
        "post_id": str(post["_id"]),
        "group_id": post.get("group_id"),
        "user_id": user_id,
        "author_id": post["author_id"],
    }


def comment_payload(comment: dict[str, Any], post: dict[str, Any]) -> dict[str, Any]:
    return {
        "comment_id": str(comment["_id"]),
        "post_id": str(post["_id"]),
        "group_id": post.get("group_id"),
        "author_id": comment["author_id"],
        "post_author_id": post["author_id"],
    }
