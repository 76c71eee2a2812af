"""posts.json: enough realistic posts, every one valid for the API, referring to real indexes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from campus_documents.schemas import CommentCreate, FlatPostCreate

pytestmark = pytest.mark.unit

SEED = Path(__file__).resolve().parents[3] / "posts.json"


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


def test_at_least_fifty_posts_of_every_type_and_attachment_type(seed: dict[str, Any]) -> None:
    posts = seed["posts"]
    assert len(posts) >= 50
    assert set(Counter(p["type"] for p in posts)) == {"question", "note", "resource"}
    kinds = {a["type"] for p in posts for a in p["attachments"]}
    assert kinds == {"link", "file", "image"}
    assert len({g["course_code"] for g in seed["groups"]}) >= 5
    assert all(p["comments"] for p in posts), "every post has at least one comment"


def test_every_post_and_comment_validates(seed: dict[str, Any]) -> None:
    for p in seed["posts"]:
        FlatPostCreate.model_validate(
            {k: p[k] for k in ("type", "title", "body", "tags", "attachments")}
            | {"author_id": p["author"]}
        )
        for c in p["comments"]:
            CommentCreate(author_id=c["author"], body=c["body"])


def test_indexes_refer_to_seed_users_and_members(seed: dict[str, Any]) -> None:
    users = range(1, seed["users"] + 1)
    members = {g["index"]: set(g["members"]) for g in seed["groups"]}
    assert sorted(members) == list(range(1, len(seed["groups"]) + 1))
    for p in seed["posts"]:
        people = [p["author"], *(c["author"] for c in p["comments"]), *p["likes"]]
        assert all(u in users for u in people), p["key"]
        if p["group"] is not None:
            assert set(people) <= members[p["group"]], p["key"]


def test_keys_are_unique(seed: dict[str, Any]) -> None:
    keys = [p["key"] for p in seed["posts"]]
    assert len(keys) == len(set(keys))
