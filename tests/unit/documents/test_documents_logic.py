"""Pure logic of the documents service: cursors, ids, idempotency fingerprints, events, leases."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from campus_common.errors import InvalidError, NotFoundError
from campus_documents.locks import Lease, post_key
from campus_documents.outbox import (
    comment_payload,
    new_event,
    now,
    post_deleted_payload,
    post_liked_payload,
    post_payload,
    to_envelope,
)
from campus_documents.service import (
    decode_cursor,
    encode_cursor,
    fingerprint,
    parse_id,
    scoped_key,
    to_post,
)

pytestmark = pytest.mark.unit

POST = {
    "_id": ObjectId(),
    "author_id": 7,
    "group_id": 3,
    "type": "question",
    "title": "Dijkstra and negative edges",
    "tags": ["graphs"],
    "body": "not in the event",
}


def test_cursor_round_trips_to_the_millisecond() -> None:
    at, oid = now(), ObjectId()
    assert decode_cursor(encode_cursor(at, oid)) == (at, oid)
    early = datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert decode_cursor(encode_cursor(early, oid)) == (early, oid)


@pytest.mark.parametrize(
    "bad", ["", "not-base64!", "MTIz", "YWJjLmRlZg", "OTk5OTk5OTk5OTk5OTk5OTk5OS4"]
)
def test_a_cursor_we_did_not_issue_is_a_422(bad: str) -> None:
    with pytest.raises(InvalidError):
        decode_cursor(bad)


@pytest.mark.parametrize(
    "bad", ["nope", "123", "zzzzzzzzzzzzzzzzzzzzzzzz", "0" * 25, "abcdefghijkl"]
)
def test_an_invalid_object_id_is_not_found(bad: str) -> None:
    with pytest.raises(NotFoundError):
        parse_id(bad)


def test_parse_id_accepts_hex() -> None:
    oid = ObjectId()
    assert parse_id(str(oid)) == oid


def test_now_is_millisecond_precise_utc() -> None:
    t = now()
    assert t.tzinfo is UTC and t.microsecond % 1000 == 0


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_idempotency_keys_are_scoped_per_user() -> None:
    assert scoped_key(1, "k") != scoped_key(2, "k")
    assert scoped_key(1, None) is None


def test_stored_event_becomes_the_shared_envelope_with_its_id() -> None:
    stored = new_event("post.created", key=str(POST["_id"]), user_id=7, payload=post_payload(POST))
    envelope = to_envelope(stored)
    assert envelope.id == uuid.UUID(stored["id"])  # a republish carries the same id
    assert envelope.source == "documents"
    assert envelope.key == str(POST["_id"])
    assert envelope.user_id == 7
    assert envelope.occurred_at == stored["occurred_at"]
    assert to_envelope(stored).to_bytes() == envelope.to_bytes()


def test_a_naive_datetime_from_the_store_is_read_as_utc() -> None:
    stored = new_event("post.liked", key="k", user_id=1, payload={})
    stored["occurred_at"] = stored["occurred_at"].replace(tzinfo=None)
    assert to_envelope(stored).occurred_at.tzinfo is not None


def test_payloads_match_the_architecture() -> None:
    pid = str(POST["_id"])
    assert post_payload(POST) == {
        "post_id": pid,
        "group_id": 3,
        "author_id": 7,
        "type": "question",
        "title": "Dijkstra and negative edges",
        "tags": ["graphs"],
    }
    assert post_deleted_payload(POST) == {"post_id": pid, "group_id": 3, "author_id": 7}
    assert post_liked_payload(POST, user_id=9) == {
        "post_id": pid,
        "group_id": 3,
        "user_id": 9,
        "author_id": 7,
    }
    comment = {"_id": ObjectId(), "author_id": 5}
    assert comment_payload(comment, POST) == {
        "comment_id": str(comment["_id"]),
        "post_id": pid,
        "group_id": 3,
        "author_id": 5,
        "post_author_id": 7,
    }


def test_a_post_reads_its_like_count_from_the_count_given_not_from_the_document() -> None:
    stored = {
        **POST,
        "attachments": [],
        "created_at": now(),
        "updated_at": now(),
        "meta": {"likes": 99},  # what a post kept before likes had documents
    }
    assert to_post(stored, 3).meta.likes == 3
    assert to_post({**stored, "meta": {}}).meta.likes == 0


def test_a_lease_is_fresh_for_half_its_ttl_only() -> None:
    taken = time.monotonic()
    assert Lease("t", post_key("p"), taken, ttl_s=10).fresh()
    assert not Lease("t", post_key("p"), taken - 6, ttl_s=10).fresh()
    assert post_key(ObjectId("0" * 24)) == f"post:{'0' * 24}"
