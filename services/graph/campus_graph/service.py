"""Friends, follows and recommendations: the rules, over the repository."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
from neo4j import AsyncDriver

from campus_common import topics
from campus_common.errors import InvalidError, NotFoundError, UnavailableError
from campus_common.events import Event
from campus_common.telemetry import current_traceparent
from campus_graph import repository as repo
from campus_graph.schemas import (
    FollowRead,
    FriendPage,
    FriendRead,
    FriendshipRead,
    FriendSuggestion,
    Graph,
    GroupSuggestion,
    Relationship,
    RelationshipPage,
    Strategy,
)

SOURCE = "graph"
Notify = Callable[[], None]


async def require_users(*, users: httpx.AsyncClient, ids: Sequence[int]) -> None:
    """404 unless every id is a user of the users service (the source of truth)."""
    try:
        response = await users.get("/users/batch", params={"ids": list(ids)})
    except httpx.HTTPError as exc:
        raise UnavailableError("the users service is unavailable, try again shortly") from exc
    if response.status_code != 200:
        raise UnavailableError(f"the users service answered {response.status_code}")
    found = {u["id"] for u in response.json()}
    for user_id in ids:
        if user_id not in found:
            raise NotFoundError(f"user {user_id} not found")


async def require_known(*, driver: AsyncDriver, users: httpx.AsyncClient, user_id: int) -> None:
    """404 unless the user is in the graph or, not projected yet, in the users service."""
    if not await repo.user_in_graph(driver, user_id=user_id):
        await require_users(users=users, ids=[user_id])


def graph_event(*, type: str, actor: int, payload: dict[str, int]) -> Event:
    """A graph event keyed by the lower user id, so both directions of a pair share a partition."""
    return Event(
        type=type, source=SOURCE, key=str(min(payload.values())), user_id=actor, payload=payload
    )


def outbox_message(event: Event) -> repo.OutboxMessage:
    """The outbox node's content for an event on campus.graph.events."""
    return repo.OutboxMessage(
        id=str(event.id),
        topic=topics.GRAPH_EVENTS,
        key=event.key,
        value=event.to_bytes().decode(),
        traceparent=current_traceparent(),
    )


async def _change(
    *,
    driver: AsyncDriver,
    users: httpx.AsyncClient,
    notify: Notify,
    edge: repo.EdgeType,
    add: bool,
    a: int,
    b: int,
    event: Event,
) -> repo.EdgeChange:
    if a == b:
        raise InvalidError("a user cannot be related to themselves")
    await require_users(users=users, ids=[a, b])
    try:
        result = await repo.change_edge(
            driver, edge=edge, add=add, a=a, b=b, message=outbox_message(event)
        )
    except repo.DeletedUserError as exc:
        raise NotFoundError(f"user {exc.user_id} not found") from exc
    if result.changed:
        notify()
    return result


async def add_friend(
    *, driver: AsyncDriver, users: httpx.AsyncClient, notify: Notify, user_id: int, other_id: int
) -> tuple[FriendshipRead, bool]:
    """Befriend both ways; the flag says whether the friendship is new."""
    event = graph_event(
        type="friend.added", actor=user_id, payload={"user_id": user_id, "other_id": other_id}
    )
    result = await _change(
        driver=driver,
        users=users,
        notify=notify,
        edge="FRIEND",
        add=True,
        a=user_id,
        b=other_id,
        event=event,
    )
    read = FriendshipRead(user_id=user_id, other_id=other_id, created_at=result.created_at)
    return read, result.changed


async def remove_friend(
    *, driver: AsyncDriver, users: httpx.AsyncClient, notify: Notify, user_id: int, other_id: int
) -> bool:
    """Unfriend both ways; False when they were not friends."""
    event = graph_event(
        type="friend.removed", actor=user_id, payload={"user_id": user_id, "other_id": other_id}
    )
    result = await _change(
        driver=driver,
        users=users,
        notify=notify,
        edge="FRIEND",
        add=False,
        a=user_id,
        b=other_id,
        event=event,
    )
    return result.changed


async def follow(
    *,
    driver: AsyncDriver,
    users: httpx.AsyncClient,
    notify: Notify,
    follower_id: int,
    followee_id: int,
) -> tuple[FollowRead, bool]:
    """Follow one way; the flag says whether the follow is new."""
    event = graph_event(
        type="follow.added",
        actor=follower_id,
        payload={"follower_id": follower_id, "followee_id": followee_id},
    )
    result = await _change(
        driver=driver,
        users=users,
        notify=notify,
        edge="FOLLOWS",
        add=True,
        a=follower_id,
        b=followee_id,
        event=event,
    )
    read = FollowRead(
        follower_id=follower_id, followee_id=followee_id, created_at=result.created_at
    )
    return read, result.changed


async def unfollow(
    *,
    driver: AsyncDriver,
    users: httpx.AsyncClient,
    notify: Notify,
    follower_id: int,
    followee_id: int,
) -> bool:
    """Stop following; False when there was no follow."""
    event = graph_event(
        type="follow.removed",
        actor=follower_id,
        payload={"follower_id": follower_id, "followee_id": followee_id},
    )
    result = await _change(
        driver=driver,
        users=users,
        notify=notify,
        edge="FOLLOWS",
        add=False,
        a=follower_id,
        b=followee_id,
        event=event,
    )
    return result.changed


async def list_friends(
    *, driver: AsyncDriver, users: httpx.AsyncClient, user_id: int, after: int, limit: int
) -> FriendPage:
    """A user's friends by id, keyset-paginated."""
    await require_known(driver=driver, users=users, user_id=user_id)
    items = [
        FriendRead(**r)
        for r in await repo.friends(driver, user_id=user_id, after=after, limit=limit)
    ]
    return FriendPage(items=items, next_after=items[-1].id if len(items) == limit else None)


async def list_relationships(*, driver: AsyncDriver, offset: int, limit: int) -> RelationshipPage:
    """Every friendship (once) and follow, with both users' names."""
    rows = await repo.relationships(driver, offset=offset, limit=limit)
    items = [Relationship(**r) for r in rows]
    return RelationshipPage(
        items=items, next_offset=offset + limit if len(items) == limit else None
    )


async def graph_view(*, driver: AsyncDriver, limit: int) -> Graph:
    """The best-connected nodes and the edges among them, for the dashboard."""
    data = await repo.graph(driver, limit=limit, edge_limit=limit * 5)
    nodes = [{**n, "id": f"{n['kind']}:{n['entity_id']}"} for n in data["nodes"]]
    return Graph.model_validate({"nodes": nodes, "edges": data["edges"]})


async def recommend_friends(
    *, driver: AsyncDriver, users: httpx.AsyncClient, user_id: int, strategy: Strategy, limit: int
) -> list[FriendSuggestion]:
    """People to befriend: friends of friends, classmates, or both (2·mutual + groups)."""
    await require_known(driver=driver, users=users, user_id=user_id)
    rows = await repo.recommend_friends(driver, user_id=user_id, strategy=strategy, limit=limit)
    return [FriendSuggestion(**r) for r in rows]


async def recommend_groups(
    *, driver: AsyncDriver, users: httpx.AsyncClient, user_id: int, limit: int
) -> list[GroupSuggestion]:
    """Groups the user's friends are in and the user is not, by number of such friends."""
    await require_known(driver=driver, users=users, user_id=user_id)
    rows = await repo.recommend_groups(driver, user_id=user_id, limit=limit)
    return [GroupSuggestion(**r) for r in rows]
