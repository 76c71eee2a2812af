"""The stored form of cached profiles, and how profiles are normalised and found in answers."""

from __future__ import annotations

import orjson
import pytest

from campus_gateway.cache import (
    LEADERBOARD,
    RedisBatch,
    batch_script_args,
    decode_entry,
    encode_entry,
)
from campus_gateway.service import normalize, posts_in

pytestmark = pytest.mark.unit


def test_entry_round_trip() -> None:
    raw = encode_entry("V", 1234, b'{"id":1,"note":"a:b"}')
    assert raw == b'V:1234:{"id":1,"note":"a:b"}'
    entry = decode_entry(raw)
    assert entry is not None
    assert (entry.state, entry.lsn, entry.data, entry.usable) == (
        "V",
        1234,
        b'{"id":1,"note":"a:b"}',
        True,
    )


def test_tombstone_and_stale_marker() -> None:
    tomb = decode_entry(encode_entry("D", 9))
    stale = decode_entry(encode_entry("S", 10))
    assert tomb is not None and tomb.usable and tomb.data == b""
    assert stale is not None and not stale.usable


@pytest.mark.parametrize("raw", [None, b"", b"{}", b"X:1:{}", b"V:abc:{}", b"V:12", b"V"])
def test_unrecognised_entries_count_as_absent(raw: bytes | None) -> None:
    assert decode_entry(raw) is None


def test_normalize_gives_the_same_bytes_for_api_and_cdc_rows() -> None:
    api = (
        b'{"id":3,"email":"a@b.edu","full_name":"Ada","created_at":"2025-01-02T03:04:05.123456Z",'
        b'"updated_at":"2025-01-02T03:04:05.123456Z"}'
    )
    cdc_row = {
        "id": 3,
        "email": "a@b.edu",
        "full_name": "Ada",
        "created_at": "2025-01-02T03:04:05.123456Z",
        "updated_at": "2025-01-02T03:04:05.123456Z",
        "password_hash": "must never be cached",
    }
    assert normalize("user", api) == normalize("user", cdc_row)
    assert b"password" not in normalize("user", cdc_row)


def test_group_profile_defaults_member_count() -> None:
    row = {"id": 1, "name": "DB", "course_code": "CS-1", "created_at": "2025-01-02T03:04:05Z"}
    assert b'"member_count":0' in normalize("group", row)


def test_posts_in_pages_and_lists() -> None:
    post = {"id": "a", "author_id": 1}
    assert posts_in({"items": [post], "next_cursor": None}) == [post]
    assert posts_in([post, "junk"]) == [post]
    assert posts_in({"detail": "x"}) == []
    assert posts_in(None) == []


def test_a_projection_batch_is_one_script_call_naming_each_key_once() -> None:
    batch = RedisBatch()
    batch.put_if_newer("user:1", b"V:7:{}", 7, 60)
    batch.apply_once("e1", [("ZINCRBY", LEADERBOARD, 1, "1"), ("LPUSH", "recent:group:2", "x")])
    batch.apply_once("e2", [("ZINCRBY", LEADERBOARD, 1, "3")])
    batch.run(("ZREM", LEADERBOARD, 1))
    keys, (ttl, steps) = batch_script_args(batch, 86400)
    assert keys == ["user:1", "processed:e1", LEADERBOARD, "recent:group:2", "processed:e2"]
    assert ttl == 86400
    # Lua's KEYS are 1-based; every argument is text (cjson would round big numbers).
    assert orjson.loads(steps) == [
        ["P", 1, "7", "V:7:{}", "60"],
        ["O", 2, [["ZINCRBY", 3, "1", "1"], ["LPUSH", 4, "x"]]],
        ["O", 5, [["ZINCRBY", 3, "1", "3"]]],
        ["R", ["ZREM", 3, "1"]],
    ]


def test_a_list_is_capped_once_per_batch_after_its_last_push() -> None:
    batch = RedisBatch()
    for event in ("e1", "e2"):
        batch.apply_once(
            event, [("LPUSH", "recent:group:2", event), ("LTRIM", "recent:group:2", 0, 49)]
        )
    batch.apply_once(
        "e3", [("ZADD", "hot:posts", "NX", 1, "p"), ("ZREMRANGEBYRANK", "hot:posts", 0, -2)]
    )
    _, (_, steps) = batch_script_args(batch, 60)
    assert orjson.loads(steps) == [
        ["O", 1, [["LPUSH", 2, "e1"]]],
        ["O", 3, [["LPUSH", 2, "e2"]]],
        # Hot posts stay capped per event: a post capped out must not take a later boost.
        ["O", 4, [["ZADD", 5, "NX", "1", "p"], ["ZREMRANGEBYRANK", 5, "0", "-2"]]],
        ["R", ["LTRIM", 2, "0", "49"]],
    ]
    assert len(batch) == 4
