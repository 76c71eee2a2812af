"""Typed events: the envelope services publish, and Debezium's change records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Event(BaseModel):
    """The one envelope every domain event travels in."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    schema_version: int = SCHEMA_VERSION
    source: str
    key: str
    user_id: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """JSON bytes for Kafka."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        """Parse; raises on anything that is not a valid envelope."""
        return cls.model_validate_json(raw)


class SourceInfo(BaseModel):
    """Debezium's `source` block: where in the WAL a change came from."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    table: str
    ts_ms: int
    lsn: int | None = None
    tx_id: int | None = Field(default=None, alias="txId")
    snapshot: str | bool | None = None


ChangeOp = Literal["c", "u", "d", "r", "t", "m"]


class ChangeRecord(BaseModel):
    """One Debezium change (JsonConverter, schemas disabled)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    op: ChangeOp
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: SourceInfo
    ts_ms: int | None = None

    @property
    def is_delete(self) -> bool:
        """A delete carries the old row in `before` and nothing in `after`."""
        return self.op == "d"

    @property
    def row(self) -> dict[str, Any]:
        """The row as it is after the change (as it was, for a delete)."""
        row = self.after if not self.is_delete else self.before
        if row is None:
            raise ValueError(f"change op={self.op} carries no row")
        return row

    @property
    def position(self) -> int:
        """The WAL position (LSN) of the change; orders changes to the same row."""
        if self.source.lsn is None:
            raise ValueError("change has no source.lsn")
        return self.source.lsn

    @property
    def committed_at(self) -> datetime:
        """When the source transaction committed."""
        return datetime.fromtimestamp(self.source.ts_ms / 1000, tz=UTC)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChangeRecord:
        """Parse a record value; raises on anything else."""
        return cls.model_validate_json(raw)


class Heartbeat(BaseModel):
    """Debezium's heartbeat row: proof that CDC was flowing at `beat_at` (WAL position `lsn`)."""

    model_config = ConfigDict(frozen=True)

    beat_at: datetime
    lsn: int

    @classmethod
    def from_change(cls, change: ChangeRecord) -> Heartbeat | None:
        """The beat a heartbeat-table change carries; None for a delete (it carries none)."""
        if change.is_delete:
            return None
        beat_at = change.row["beat_at"]
        parsed = (
            datetime.fromtimestamp(beat_at / 1_000_000, tz=UTC)
            if isinstance(beat_at, int) and not isinstance(beat_at, bool)
            else datetime.fromisoformat(beat_at)
        )
        return cls(
            beat_at=parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), lsn=change.position
        )
