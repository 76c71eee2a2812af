"""Posts, comments and likes (documents service); feeds enriched from the Redis profile cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, Response

from campus_common.errors import UnavailableError
from campus_gateway import contract, service
from campus_gateway.auth import Principal, ensure_self
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.contract import errors
from campus_gateway.routes.deps import (
    Caller,
    Gw,
    Id,
    Limit,
    PostId,
    forwarded,
    passthrough,
    rate_limited,
)
from campus_gateway.schemas import (
    CommentCreate,
    GroupPostCreate,
    LikeRequest,
    PostCreate,
    PostUpdate,
)
from campus_gateway.service import Gateway

router = APIRouter(responses=errors(), tags=["posts"], dependencies=[Depends(rate_limited)])
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


def _query(request: Request) -> list[tuple[str, str]]:
    # Filters the documents service adds later pass through without a gateway release.
    return request.query_params.multi_items()


async def _enriched(gw: Gateway, body: Any) -> JSONResponse:
    return JSONResponse(await service.enrich_posts(gw=gw, body=body))


@router.post(
    "/groups/{group_id}/posts", status_code=status.HTTP_201_CREATED, response_model=contract.Post
)
async def create_group_post(
    group_id: Id, body: GroupPostCreate, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Post in a group you belong to (`author_id` defaults to you). Honours `Idempotency-Key`."""
    data = _authored(body.forward(), caller, "author_id", action="post")
    reply = await gw.upstream.call(
        "documents",
        "POST",
        f"/groups/{group_id}/posts",
        json=data,
        headers=forwarded(request),
        actor=caller,
    )
    return passthrough(reply)


@router.get("/groups/{group_id}/posts/feed", response_model=contract.PostPage)
async def group_feed(
    group_id: Id, gw: Gw, request: Request, limit: Limit = 20, cursor: Cursor = None
) -> Response:
    """A group's posts, newest first, each with its author and group (one MGET for all of them)."""
    reply = await gw.upstream.call(
        "documents", "GET", f"/groups/{group_id}/posts/feed", params=_query(request)
    )
    return await _enriched(gw, reply.json())


@router.post("/posts", status_code=status.HTTP_201_CREATED, response_model=contract.Post)
async def create_post(body: PostCreate, gw: Gw, caller: Caller, request: Request) -> Response:
    """The flat API: a post with its `group_id` in the body."""
    data = _authored(body.forward(), caller, "author_id", action="post")
    reply = await gw.upstream.call(
        "documents", "POST", "/posts", json=data, headers=forwarded(request), actor=caller
    )
    return passthrough(reply)


@router.get("/posts", response_model=contract.PostPage)
async def list_posts(
    gw: Gw,
    request: Request,
    author_id: Annotated[int | None, Query(gt=0)] = None,
    group_id: Annotated[int | None, Query(gt=0)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response:
    """Posts, newest first, filtered by author, group or tag, enriched with user data."""
    reply = await gw.upstream.call("documents", "GET", "/posts", params=_query(request))
    return await _enriched(gw, reply.json())


@router.get("/posts/hot", response_model=list[contract.HotPost])
async def hot_posts(gw: Gw, limit: Limit = 10) -> list[dict[str, Any]]:
    """Post ids ranked by recency pushed forward by comments and likes (Redis only)."""
    try:
        rows = await gw.cache.hot_posts(limit)
    except CacheUnavailableError as exc:
        raise UnavailableError(
            "hot posts are unavailable: they live only in Redis, which is down"
        ) from exc
    return [{"post_id": post_id, "score": score} for post_id, score in rows]


@router.get("/posts/{post_id}", response_model=contract.EnrichedPost)
async def get_post(post_id: PostId, gw: Gw) -> Response:
    """One post with its author and group."""
    reply = await gw.upstream.call("documents", "GET", f"/posts/{post_id}")
    post = reply.json()
    await service.enrich_posts(gw=gw, body=[post])
    return JSONResponse(post)


@router.put("/posts/{post_id}", response_model=contract.Post)
async def update_post(
    post_id: PostId, body: PostUpdate, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Edit your post (the documents service checks that you wrote it)."""
    actor = await _acting_author(gw, post_id, caller)
    reply = await gw.upstream.call(
        "documents",
        "PUT",
        f"/posts/{post_id}",
        json=body.forward(),
        headers=forwarded(request),
        actor=actor,
    )
    return passthrough(reply)


@router.delete("/posts/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_post(post_id: PostId, gw: Gw, caller: Caller, request: Request) -> Response:
    """Delete your post (the documents service checks that you wrote it)."""
    actor = await _acting_author(gw, post_id, caller)
    reply = await gw.upstream.call(
        "documents", "DELETE", f"/posts/{post_id}", headers=forwarded(request), actor=actor
    )
    return passthrough(reply)


@router.post(
    "/posts/{post_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=contract.Comment,
)
async def create_comment(
    post_id: PostId, body: CommentCreate, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Comment on a post (`author_id` defaults to you)."""
    data = _authored(body.forward(), caller, "author_id", action="comment")
    reply = await gw.upstream.call(
        "documents",
        "POST",
        f"/posts/{post_id}/comments",
        json=data,
        headers=forwarded(request),
        actor=caller,
    )
    return passthrough(reply)


@router.get("/posts/{post_id}/comments", response_model=contract.CommentPage)
async def list_comments(
    post_id: PostId,
    gw: Gw,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    """A post's comments, oldest first."""
    reply = await gw.upstream.call(
        "documents", "GET", f"/posts/{post_id}/comments", params=_query(request)
    )
    return passthrough(reply)


@router.post("/posts/{post_id}/like", response_model=contract.Like)
async def like_post(
    post_id: PostId, gw: Gw, caller: Caller, request: Request, body: LikeRequest | None = None
) -> Response:
    """Like a post once (repeating changes nothing); `user_id` defaults to you."""
    data = _authored((body or LikeRequest()).forward(), caller, "user_id", action="like")
    reply = await gw.upstream.call(
        "documents",
        "POST",
        f"/posts/{post_id}/like",
        json=data,
        headers=forwarded(request),
        actor=caller,
    )
    return passthrough(reply)


def _authored(
    data: dict[str, Any], caller: Principal, field: str, *, action: str
) -> dict[str, Any]:
    data[field] = data.get(field) or caller.user_id
    ensure_self(caller, data[field], action=action)
    return data


async def _acting_author(gw: Gateway, post_id: str, caller: Principal) -> Principal:
    """Who edits: the caller, or for the admin the post's own author (the documents service
    lets only the author change a post)."""
    if not caller.admin:
        return caller
    post = (await gw.upstream.call("documents", "GET", f"/posts/{post_id}")).json()
    return Principal(user_id=int(post["author_id"]))
