"""Request and response bodies. No response model carries the password hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

from campus_common.web import MAX_ID

Role = Literal["member", "moderator", "admin"]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000: refuse it as a 422 here, not as a driver error later.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Field(min_length=1, max_length=200)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserCreate(Strict):
    email: EmailStr
    full_name: Text = Name
    password: str = Field(min_length=8, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _name_alias(cls, data: object) -> object:
        # The second brief calls the field `name`; accept either.
        if isinstance(data, dict) and "name" in data and "full_name" not in data:
            data = {**data, "full_name": data["name"]}
            del data["name"]
        return data


class UserUpdate(Strict):
    email: EmailStr | None = None
    full_name: Text | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=256)
    current_password: str | None = Field(
        default=None, min_length=1, max_length=256, description="required to set a new password"
    )

    @model_validator(mode="before")
    @classmethod
    def _name_alias(cls, data: object) -> object:
        if isinstance(data, dict) and "name" in data and "full_name" not in data:
            data = {**data, "full_name": data["name"]}
            del data["name"]
        return data


class UserRead(BaseModel):
    id: int
    email: str
    full_name: str
    created_at: datetime
    updated_at: datetime


class Credentials(Strict):
    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class GroupCreate(Strict):
    name: Text = Name
    course_code: Text = Field(min_length=1, max_length=50)


class GroupRead(BaseModel):
    id: int
    name: str
    course_code: str
    created_at: datetime
    member_count: int = 0


class MembershipCreate(Strict):
    user_id: int = Field(gt=0, le=MAX_ID)
    role: Role = "member"


class MembershipRead(BaseModel):
    user_id: int
    group_id: int
    role: Role
    joined_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_after: int | None = None
