"""The typed event models: Debezium change records and our envelope."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from campus_common.events import ChangeRecord, Event

pytestmark = pytest.mark.unit

CREATE = {
    "before": None,
    "after": {
        "id": 7,
        "email": "a@university.edu",
        "full_name": "Ada",
        "created_at": "2026-11-22T02:11:11.524495Z",
        "updated_at": "2026-11-22T02:11:11.524495Z",
    },
    "source": {
        "version": "3.6.3.Final",
        "connector": "postgresql",
        "name": "campus",
        "ts_ms": 1763777471524,
        "snapshot": "false",
        "db": "campus",
        "schema": "public",
        "table": "users",
        "txId": 812,
        "lsn": 26843512,
        "xmin": None,
    },
    "op": "c",
    "ts_ms": 1763777471600,
}


def test_change_record_parses_a_debezium_create() -> None:
    change = ChangeRecord.from_bytes(json.dumps(CREATE).encode())
    assert change.op == "c" and not change.is_delete
    assert change.position == 26843512
    assert change.row["email"] == "a@university.edu"
    assert change.source.tx_id == 812
    assert change.committed_at.year == 2025


def test_a_delete_exposes_the_old_key() -> None:
    delete = {**CREATE, "op": "d", "before": {"id": 7, "email": None}, "after": None}
    change = ChangeRecord.from_bytes(json.dumps(delete).encode())
    assert change.is_delete and change.row["id"] == 7


@pytest.mark.parametrize("raw", [b"not json", b"{}", json.dumps({**CREATE, "op": "x"}).encode()])
def test_garbage_is_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        ChangeRecord.from_bytes(raw)


def test_a_change_without_a_row_or_position_says_so() -> None:
    change = ChangeRecord.model_validate(
        {**CREATE, "after": None, "source": {**CREATE["source"], "lsn": None}}
    )
    with pytest.raises(ValueError, match="no row"):
        _ = change.row
    with pytest.raises(ValueError, match="lsn"):
        _ = change.position


def test_event_round_trips_through_bytes() -> None:
    event = Event(
        type="post.created", source="documents", key="p1", user_id=3, payload={"post_id": "p1"}
    )
    again = Event.from_bytes(event.to_bytes())
    assert again == event
    assert isinstance(again.id, uuid.UUID) and again.schema_version == 1
