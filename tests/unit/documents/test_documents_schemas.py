"""Request validation of the documents service: limits, attachment types, operator injection."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from campus_documents.schemas import (
    CommentCreate,
    FlatPostCreate,
    LikeCreate,
    PostCreate,
    PostUpdate,
    unsafe_key,
)

pytestmark = pytest.mark.unit


def post(**overrides: Any) -> dict[str, Any]:
    return {"author_id": 1, "type": "question", "title": "Why B-trees?", "body": "..."} | overrides


def errors(model: type[BaseModel], data: Any) -> list[ErrorDetails]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors()


def test_a_full_post_is_accepted_and_normalised() -> None:
    p = PostCreate.model_validate(
        post(
            title="  Why B-trees?  ",
            tags=["CS-450", "cs-450", " Indexes "],
            attachments=[
                {"type": "link", "url": "https://www.postgresql.org/docs/", "title": "docs"},
                {"type": "file", "url": "http://files.campus.edu/a.pdf"},
                {"type": "image", "url": "https://files.campus.edu/a.png"},
            ],
        )
    )
    assert p.title == "Why B-trees?"
    assert p.tags == ["cs-450", "indexes"]
    assert [a.type for a in p.attachments] == ["link", "file", "image"]


def test_defaults_for_the_flat_api() -> None:
    p = FlatPostCreate.model_validate({"author_id": 3, "title": "Hello"})
    assert (p.type, p.body, p.tags, p.attachments, p.group_id) == ("note", "", [], [], None)


@pytest.mark.parametrize(
    "data",
    [
        {"$where": "1"},
        {"title": {"$gt": ""}},
        {"attachments": [{"type": "link", "url": "https://x.org", "$set": 1}]},
        {"tags": [{"a.b": 1}]},
        {"nested": {"deeper": [{"ok": {"x.y": 1}}]}},
    ],
)
def test_operator_and_dotted_keys_anywhere_are_refused(data: dict[str, Any]) -> None:
    errs = errors(PostCreate, post() | data)
    assert len(errs) == 1
    assert "must not start with '$' or contain '.'" in errs[0]["msg"]


def test_unsafe_key_finds_the_first_offender() -> None:
    assert unsafe_key({"a": [{"b": 1}, {"c": {"$in": [1]}}]}) == "$in"
    assert unsafe_key({"a": ["$not-a-key", "x.y"]}) is None  # values are data, not names
    assert unsafe_key([{"ok": 1}, {"a.b": 2}]) == "a.b"


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"title": "x" * 201}, ("title",), "at most 200 characters"),
        ({"title": ""}, ("title",), "at least 1 character"),
        ({"body": "x" * 20_001}, ("body",), "at most 20000 characters"),
        ({"tags": [f"t{i}" for i in range(21)]}, ("tags",), "at most 20 items"),
        ({"tags": ["x" * 41]}, ("tags", 0), "at most 40 characters"),
        (
            {"attachments": [{"type": "link", "url": "https://a.org"}] * 11},
            ("attachments",),
            "at most 10 items",
        ),
        (
            {"attachments": [{"type": "video", "url": "https://a.org"}]},
            ("attachments", 0, "type"),
            "'link', 'file' or 'image'",
        ),
        (
            {"attachments": [{"type": "link", "url": "javascript:alert(1)"}]},
            ("attachments", 0, "url"),
            "",
        ),
        (
            {"attachments": [{"type": "file", "url": "ftp://files.campus.edu/a"}]},
            ("attachments", 0, "url"),
            "'http' or 'https'",
        ),
        ({"type": "poll"}, ("type",), "'question', 'note' or 'resource'"),
        ({"author_id": 0}, ("author_id",), "greater than 0"),
        ({"meta": {"likes": 99}}, ("meta",), "Extra inputs"),
    ],
)
def test_limits_have_clear_messages(
    data: dict[str, Any], loc: tuple[Any, ...], fragment: str
) -> None:
    errs = errors(PostCreate, post() | data)
    assert errs[0]["loc"] == loc
    assert fragment in errs[0]["msg"]


def test_update_needs_something_and_refuses_nulls() -> None:
    assert "nothing to update" in errors(PostUpdate, {})[0]["msg"]
    assert "title may not be null" in errors(PostUpdate, {"title": None})[0]["msg"]
    assert "must not start with '$'" in errors(PostUpdate, {"$set": {"author_id": 2}})[0]["msg"]
    assert "Extra inputs" in errors(PostUpdate, {"author_id": 2})[0]["msg"]
    update = PostUpdate.model_validate({"tags": ["A", "a"]})
    assert update.model_dump(exclude_unset=True) == {"tags": ["a"]}


def test_comments_and_likes() -> None:
    assert CommentCreate(author_id=2, body=" nice ").body == "nice"
    assert errors(CommentCreate, {"author_id": 2, "body": ""})[0]["loc"] == ("body",)
    assert errors(CommentCreate, {"author_id": 2, "body": "x" * 5001})[0]["loc"] == ("body",)
    assert LikeCreate.model_validate({}).user_id is None
