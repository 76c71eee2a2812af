"""Bodies the gateway reads or documents. The services validate in full; the gateway checks what
it needs to decide who may do what, and passes the rest on unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["member", "moderator", "admin"]
PostType = Literal["question", "note", "resource"]
AttachmentType = Literal["link", "file", "image"]


# Far deeper than any body of ours (a post's attachments are 3 levels); deep enough JSON would
# exhaust the recursion of whatever walks it next (the JSON encoder, the services' validators).
MAX_NESTING = 20


def body_problem(data: Any) -> str | None:
    """Why a parsed JSON body cannot be forwarded as it is, or None; iterative, for any depth."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                # JSON can escape half of a UTF-16 pair (`"\\ud800"`); UTF-8 cannot carry it.
                return "text must be valid Unicode: lone surrogates are not allowed"
        elif isinstance(value, dict | list):
            if depth >= MAX_NESTING:
                return f"the body is nested more than {MAX_NESTING} levels deep"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
    return None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _forwardable(cls, data: Any) -> Any:
        # Checked before the fields: unconstrained and extra fields go on to a service unparsed.
        problem = body_problem(data)
        if problem is not None:
            raise ValueError(problem)
        return data

    def forward(self) -> dict[str, Any]:
        """What the service receives: only the fields the caller sent."""
        return self.model_dump(mode="json", exclude_unset=True)


class Open(Body):
    # Unknown fields go on to the service, which accepts or refuses them (its schema evolves).
    model_config = ConfigDict(extra="allow")


class UserCreate(Body):
    email: str = Field(max_length=320, examples=["newuser@university.edu"])
    full_name: str | None = Field(default=None, max_length=200, examples=["New User"])
    name: str | None = Field(default=None, max_length=200, description="alias of full_name")
    password: str = Field(min_length=8, max_length=256)


class UserUpdate(Body):
    email: str | None = Field(default=None, max_length=320)
    full_name: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200, description="alias of full_name")
    password: str | None = Field(default=None, min_length=8, max_length=256)
    current_password: str | None = Field(
        default=None, max_length=256, description="required with a new password"
    )


class GroupCreate(Body):
    name: str = Field(max_length=200, examples=["Advanced Databases Study Group"])
    course_code: str = Field(max_length=50, examples=["CS-450"])


class JoinRequest(Body):
    user_id: int | None = Field(default=None, gt=0, description="defaults to the caller")
    role: Role = "member"


class Attachment(Open):
    type: AttachmentType
    url: str
    title: str = ""


class GroupPostCreate(Open):
    author_id: int | None = Field(default=None, gt=0, description="defaults to the caller")
    type: PostType = "note"
    title: str
    body: str = ""
    tags: list[str] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)


class PostCreate(GroupPostCreate):
    group_id: int | None = Field(default=None, gt=0, description="optional: a post in no group")


class PostUpdate(Open):
    type: PostType | None = None
    title: str | None = None
    body: str | None = None
    tags: list[str] | None = None
    attachments: list[Attachment] | None = None


class CommentCreate(Open):
    author_id: int | None = Field(default=None, gt=0, description="defaults to the caller")
    body: str


class LikeRequest(Body):
    user_id: int | None = Field(default=None, gt=0, description="defaults to the caller")


class FollowRequest(Body):
    follower_id: int | None = Field(default=None, gt=0, description="defaults to the caller")
    followee_id: int = Field(gt=0)


class RateLimitOverride(Body):
    limit: int = Field(ge=0, le=1_000_000, description="requests per window; 0 = unlimited")
    window_s: int = Field(default=60, ge=1, le=86_400)
    ttl_s: int = Field(default=3600, ge=1, le=30 * 86_400, description="when the override lapses")


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int


# Cached profiles: both the services' answers and CDC rows go through these, so an entry's
# bytes are the same whichever path wrote it.
class UserProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    email: str
    full_name: str
    created_at: datetime
    updated_at: datetime


class GroupProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    course_code: str
    created_at: datetime
    member_count: int = 0


class LeaderboardEntry(BaseModel):
    rank: int
    user_id: int
    points: float
    full_name: str | None = None
