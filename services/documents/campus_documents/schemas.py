"""Request and response bodies; every request body refuses `$`-prefixed and dotted field names."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    UrlConstraints,
    model_validator,
)

from campus_common.web import MAX_ID

PostType = Literal["question", "note", "resource"]
AttachmentType = Literal["link", "file", "image"]
UserId = Annotated[int, Field(gt=0, le=MAX_ID)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=40)
]
Url = Annotated[HttpUrl, UrlConstraints(max_length=2048)]

MAX_TITLE = 200
MAX_BODY = 20_000
MAX_COMMENT = 5_000
MAX_TAGS = 20
MAX_ATTACHMENTS = 10


def unsafe_key(value: Any) -> str | None:
    """The first key, at any depth, that MongoDB would read as an operator or a path."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key:
                return str(key)
            found = unsafe_key(inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for inner in value:
            found = unsafe_key(inner)
            if found is not None:
                return found
    return None


def has_nul(value: Any) -> bool:
    """Whether U+0000 appears in any string or key, at any depth."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_operator_keys(cls, data: Any) -> Any:
        # Checked before anything else so `{"$where": ...}` never reaches a query, even nested.
        key = unsafe_key(data)
        if key is not None:
            raise ValueError(
                f"field name {key!r} is not allowed: names must not start with '$' or contain '.'"
            )
        # FerretDB keeps documents in PostgreSQL, which cannot hold U+0000 in a string.
        if has_nul(data):
            raise ValueError("text must not contain the NUL character (U+0000)")
        return data


class Attachment(Strict):
    type: AttachmentType
    url: Url
    title: str = Field(default="", max_length=MAX_TITLE)


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


# Tags are lower-cased and de-duplicated so `?tag=` filters match however they were typed.
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]
Attachments = Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)]


class PostContent(Strict):
    type: PostType = "note"
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    body: str = Field(default="", max_length=MAX_BODY)
    tags: Tags = Field(default_factory=list)
    attachments: Attachments = Field(default_factory=list)


class PostCreate(PostContent):
    """Body of POST /groups/{id}/posts: the group comes from the path."""

    author_id: UserId


class FlatPostCreate(PostCreate):
    """Body of POST /posts: the group is optional."""

    group_id: UserId | None = None


class PostUpdate(Strict):
    """Body of PUT /posts/{id}: only the fields given change."""

    type: PostType | None = None
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE)
    body: str | None = Field(default=None, max_length=MAX_BODY)
    tags: Tags | None = None
    attachments: Attachments | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> PostUpdate:
        if not self.model_fields_set:
            raise ValueError(
                "nothing to update: give at least one of type, title, body, tags, attachments"
            )
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may not be null")
        return self


class CommentCreate(Strict):
    author_id: UserId
    body: str = Field(min_length=1, max_length=MAX_COMMENT)


class LikeCreate(Strict):
    user_id: UserId | None = None


class AttachmentRead(BaseModel):
    type: AttachmentType
    url: str
    title: str = ""


class Meta(BaseModel):
    likes: int = 0


class PostRead(BaseModel):
    id: str
    author_id: int
    group_id: int | None
    type: PostType
    title: str
    body: str
    tags: list[str]
    attachments: list[AttachmentRead]
    meta: Meta
    created_at: datetime
    updated_at: datetime
    schema_version: int


class CommentRead(BaseModel):
    id: str
    post_id: str
    author_id: int
    body: str
    created_at: datetime


class LikeRead(BaseModel):
    post_id: str
    user_id: int
    likes: int
    liked: bool = Field(
        description="true if this request added the like, false if it was already there"
    )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
