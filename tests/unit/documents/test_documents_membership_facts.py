"""The membership facts read from the CDC topic: the last change of each row wins."""

from __future__ import annotations

import orjson
import pytest

from campus_common.config import KafkaConfig
from campus_documents.memberships import Memberships

pytestmark = pytest.mark.unit


def change(op: str, user_id: int, group_id: int, lsn: int) -> bytes:
    # As Debezium's JsonConverter writes it (schemas disabled); a delete carries the key only.
    row = {"user_id": user_id, "group_id": group_id}
    full = row | {"role": "member", "joined_at": "2026-12-01T10:00:00Z"}
    return orjson.dumps(
        {
            "op": op,
            "before": row if op == "d" else None,
            "after": None if op == "d" else full,
            "source": {"table": "group_memberships", "ts_ms": 1, "lsn": lsn},
        }
    )


def test_the_last_change_of_a_membership_decides_and_nothing_counts_before_catching_up() -> None:
    facts = Memberships(KafkaConfig(bootstrap_servers="127.0.0.1:9"))
    for value in (
        change("r", 1, 10, 100),
        change("c", 2, 10, 200),
        change("d", 2, 10, 300),
        None,  # the tombstone after a delete
        b"not json",
        change("c", 3, 11, 400),
    ):
        facts.apply(value)
    # Before the first full read nothing is answered here: everything is asked live.
    assert not facts.holds(group_id=10, user_id=1)
    facts.caught_up.set()
    assert facts.holds(group_id=10, user_id=1)
    assert not facts.holds(group_id=10, user_id=2)
    assert facts.holds(group_id=11, user_id=3)
    assert not facts.holds(group_id=10, user_id=3)
    assert len(facts) == 2
