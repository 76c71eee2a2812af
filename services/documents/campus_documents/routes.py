"""HTTP endpoints.

Who acts: the `sub` of the service token (signed by the gateway after it authenticated the
user, see campus_common.internal_auth). Creates name their author in the body (`author_id`, a
like's `user_id`), which must be that user unless the gateway acts for the admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from campus_common.errors import ForbiddenError, InvalidError, UnavailableError
from campus_common.internal_auth import InternalCaller, ensure_acts_as
from campus_common.web import MAX_ID, Id
from campus_documents import service
from campus_documents.schemas import (
    CommentCreate,
    CommentRead,
    FlatPostCreate,
    LikeCreate,
    LikeRead,
    Page,
    PostCreate,
    PostRead,
    PostUpdate,
)
from campus_documents.service import Store
from campus_documents.users_client import UsersClient

router = APIRouter()

GroupId = Id
PositiveId = Annotated[int | None, Query(gt=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="a retry with the same key returns the first result and creates nothing",
    ),
]
REPLAYED = "Idempotent-Replayed"
# hit: a group's first page from this instance's feed cache; miss: read and kept; bypass: read.
CACHE = "X-Cache"


async def get_store(request: Request) -> Store:
    if not request.app.state.ready.is_set():
        raise UnavailableError("the document store is not ready yet, try again shortly")
    return request.app.state.store  # type: ignore[no-any-return]


async def get_users(request: Request) -> UsersClient:
    return request.app.state.users  # type: ignore[no-any-return]


async def acting_user(caller: InternalCaller) -> int:
    """The user the caller acts for; 403 when the token names none."""
    if caller.user_id is None:
        raise ForbiddenError("this needs a service token acting for a user")
    return caller.user_id


Actor = Annotated[int, Depends(acting_user)]
StoreDep = Annotated[Store, Depends(get_store)]
UsersDep = Annotated[UsersClient, Depends(get_users)]


@router.post("/groups/{group_id}/posts", status_code=status.HTTP_201_CREATED, tags=["posts"])
async def create_group_post(
    group_id: GroupId,
    body: PostCreate,
    response: Response,
    store: StoreDep,
    users: UsersDep,
    caller: InternalCaller,
    key: IdempotencyKey = None,
) -> PostRead:
    """Post in a group; the author must be a member (asked of the users service)."""
    ensure_acts_as(caller, body.author_id, action="post")
    post, replayed = await service.create_post(
        store=store, users=users, data=body, group_id=group_id, idempotency_key=key
    )
    if replayed:
        response.headers[REPLAYED] = "true"
    return post


@router.get("/groups/{group_id}/posts/feed", tags=["posts"])
async def group_feed(
    group_id: GroupId, store: StoreDep, response: Response, limit: Limit = 20, cursor: Cursor = None
) -> Page[PostRead]:
    """A group's posts, newest first; pass `next_cursor` back for the next page. `X-Cache`
    says whether the first page came from this instance's feed cache."""
    page, outcome = await service.list_posts(
        store=store, group_id=group_id, limit=limit, cursor=cursor
    )
    response.headers[CACHE] = outcome
    return page


@router.post("/posts", status_code=status.HTTP_201_CREATED, tags=["posts"])
async def create_post(
    body: FlatPostCreate,
    response: Response,
    store: StoreDep,
    users: UsersDep,
    caller: InternalCaller,
    key: IdempotencyKey = None,
) -> PostRead:
    """Post with an optional group_id (membership is checked when it is given)."""
    ensure_acts_as(caller, body.author_id, action="post")
    post, replayed = await service.create_post(
        store=store, users=users, data=body, group_id=body.group_id, idempotency_key=key
    )
    if replayed:
        response.headers[REPLAYED] = "true"
    return post


@router.get("/posts", tags=["posts"])
async def list_posts(
    store: StoreDep,
    response: Response,
    author_id: PositiveId = None,
    group_id: PositiveId = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[^\x00]+$")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[PostRead]:
    """Posts newest first, filtered by author, group and tag (`X-Cache` as for the feed)."""
    page, outcome = await service.list_posts(
        store=store, author_id=author_id, group_id=group_id, tag=tag, limit=limit, cursor=cursor
    )
    response.headers[CACHE] = outcome
    return page


@router.get("/posts/{post_id}", tags=["posts"])
async def get_post(post_id: str, store: StoreDep) -> PostRead:
    return await service.get_post(store=store, post_id=post_id)


@router.put("/posts/{post_id}", tags=["posts"])
async def update_post(post_id: str, body: PostUpdate, actor: Actor, store: StoreDep) -> PostRead:
    """Change the fields given; only the author may."""
    return await service.update_post(store=store, post_id=post_id, actor=actor, data=body)


@router.delete("/posts/{post_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["posts"])
async def delete_post(post_id: str, actor: Actor, store: StoreDep) -> None:
    """Delete a post; only the author may."""
    await service.delete_post(store=store, post_id=post_id, actor=actor)


@router.post("/posts/{post_id}/like", tags=["posts"])
async def like_post(
    post_id: str,
    store: StoreDep,
    users: UsersDep,
    caller: InternalCaller,
    body: Annotated[LikeCreate | None, Body()] = None,
    key: IdempotencyKey = None,
) -> LikeRead:
    """Like once per user (`user_id` in the body, else the acting user); repeating changes
    nothing. In a group, only its members may like."""
    # A like is idempotent by nature, so an Idempotency-Key is accepted and needs no storage.
    del key
    user_id = (body.user_id if body is not None else None) or caller.user_id
    if user_id is None:
        raise InvalidError("who likes? give user_id in the body")
    ensure_acts_as(caller, user_id, action="like")
    return await service.like_post(store=store, users=users, post_id=post_id, user_id=user_id)


@router.post("/posts/{post_id}/comments", status_code=status.HTTP_201_CREATED, tags=["comments"])
async def add_comment(
    post_id: str,
    body: CommentCreate,
    response: Response,
    store: StoreDep,
    users: UsersDep,
    caller: InternalCaller,
    key: IdempotencyKey = None,
) -> CommentRead:
    """Comment on a post; in a group, only its members may."""
    ensure_acts_as(caller, body.author_id, action="comment")
    comment, replayed = await service.add_comment(
        store=store, users=users, post_id=post_id, data=body, idempotency_key=key
    )
    if replayed:
        response.headers[REPLAYED] = "true"
    return comment


@router.get("/posts/{post_id}/comments", tags=["comments"])
async def list_comments(
    post_id: str,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Page[CommentRead]:
    """Comments oldest first; pass `next_cursor` back for the next page."""
    return await service.list_comments(store=store, post_id=post_id, limit=limit, cursor=cursor)
