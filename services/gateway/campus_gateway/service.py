"""What the gateway adds to forwarding: cache-aside profiles, feed enrichment, the leaderboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from campus_common.consumer import ProjectionRunner
from campus_common.errors import NotFoundError, UnavailableError
from campus_common.retry import retrying
from campus_gateway.auth import Principal
from campus_gateway.cache import Cache, CacheUnavailableError, Entry, Kind
from campus_gateway.config import Settings
from campus_gateway.profiles import normalize
from campus_gateway.ratelimit import OPEN, RateLimiter, Verdict
from campus_gateway.schemas import LeaderboardEntry
from campus_gateway.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)

CacheOutcome = Literal["hit", "miss", "bypass"]
_PATHS: dict[Kind, str] = {"user": "/users", "group": "/groups"}


@dataclass
class Gateway:
    """The resources one gateway process holds (created in the lifespan)."""

    settings: Settings
    upstream: Upstream
    cache: Cache
    projections: dict[str, ProjectionRunner[Any]] = field(default_factory=dict)
    # How a projection run by every gateway process is rebuilt (campus_gateway.rebuild).
    rebuilders: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)


async def get_profile(*, gw: Gateway, kind: Kind, entity_id: int) -> tuple[bytes, CacheOutcome]:
    """One user or group profile: Redis first, then its service (and fill the cache)."""
    outcome: CacheOutcome = "miss"
    try:
        (entry,) = await gw.cache.get_entries(kind, [entity_id])
    except CacheUnavailableError:
        entry, outcome = None, "bypass"
    return await _answer(gw=gw, kind=kind, entity_id=entity_id, entry=entry, outcome=outcome)


async def _answer(
    *, gw: Gateway, kind: Kind, entity_id: int, entry: Entry | None, outcome: CacheOutcome
) -> tuple[bytes, CacheOutcome]:
    if entry is not None and entry.usable:
        if entry.state == "D":
            raise NotFoundError(f"{kind} {entity_id} not found")
        return entry.data, "hit"
    reply = await gw.upstream.call("users", "GET", f"{_PATHS[kind]}/{entity_id}")
    data = normalize(kind, reply.content)
    if outcome == "miss" and entry is None:
        # A "stale" entry stays until the projection replaces it: refilling it here could put
        # back a value older than a change the projection has not applied yet.
        with contextlib.suppress(CacheUnavailableError):
            await gw.cache.fill(kind, [(entity_id, data)])
    return data, outcome


@dataclass(frozen=True, slots=True)
class Counted:
    """A profile read together with what the request needs from Redis besides it."""

    verdict: Verdict
    data: bytes
    outcome: CacheOutcome


async def counted_profile(
    *,
    gw: Gateway,
    limiter: RateLimiter,
    address: str,
    caller: Principal | None,
    kind: Kind,
    entity_id: int,
) -> Counted:
    """A profile read in one Redis round trip: the request's rate-limit counts, the entry and,
    with a token, the caller's own entry (a deleted account's token must stop working).

    Over the limit, the verdict comes back with no data and nothing else is asked."""
    own = caller is not None and kind == "user" and caller.user_id == entity_id
    check_caller = caller is not None and not own
    counts = 0

    def queue(pipe: Any) -> None:
        nonlocal counts
        counts = limiter.queue(
            pipe, address=address, user_id=caller.user_id if caller is not None else None
        )
        gw.cache.queue_entries(pipe, kind, [entity_id])
        if check_caller:
            assert caller is not None
            gw.cache.queue_entries(pipe, "user", [caller.user_id])

    outcome: CacheOutcome = "miss"
    caller_entry: Entry | None = None
    try:
        results = await gw.cache.pipelined(queue)
    except CacheUnavailableError:
        verdict, entry, outcome = OPEN, None, "bypass"
    else:
        verdict = limiter.verdict(results[:counts])
        if not verdict.allowed:
            return Counted(verdict, b"", outcome)
        if check_caller:
            entry, caller_entry = gw.cache.take_entries(results[-2:])
        else:
            (entry,) = gw.cache.take_entries(results[-1:])
    if caller is not None:
        known = entry if own else caller_entry
        if known is not None and known.usable:
            exists = known.state == "V"
        else:
            exists = await user_exists(gw=gw, user_id=caller.user_id)
        if not exists:
            raise GoneAccountError
    data, outcome = await _answer(
        gw=gw, kind=kind, entity_id=entity_id, entry=entry, outcome=outcome
    )
    return Counted(verdict, data, outcome)


class GoneAccountError(Exception):
    """The token is valid but its account was deleted (the route answers 401)."""


async def get_profiles(*, gw: Gateway, kind: Kind, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Many profiles: one MGET for all of them, one batch call to the service for the misses."""
    wanted = sorted(set(ids))
    found: dict[int, dict[str, Any]] = {}
    missing: list[int] = wanted
    fillable: set[int] = set(wanted)
    try:
        entries = await gw.cache.get_entries(kind, wanted)
    except CacheUnavailableError:
        entries = [None] * len(wanted)
        fillable = set()
    else:
        missing = []
        for entity_id, entry in zip(wanted, entries, strict=True):
            if entry is None or not entry.usable:
                missing.append(entity_id)
                if entry is not None:
                    fillable.discard(entity_id)
            elif entry.state == "V":
                found[entity_id] = orjson.loads(entry.data)
    if missing:
        reply = await gw.upstream.call(
            "users", "GET", f"{_PATHS[kind]}/batch", params=[("ids", i) for i in missing]
        )
        fresh = [(int(row["id"]), normalize(kind, row)) for row in reply.json()]
        for entity_id, data in fresh:
            found[entity_id] = orjson.loads(data)
        with contextlib.suppress(CacheUnavailableError):
            await gw.cache.fill(kind, [(i, d) for i, d in fresh if i in fillable])
    return found


async def user_exists(*, gw: Gateway, user_id: int) -> bool:
    """Whether the account is still there (a deleted user's token must stop working)."""
    try:
        await get_profile(gw=gw, kind="user", entity_id=user_id)
    except NotFoundError:
        return False
    except UpstreamError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


PUBLIC_USER_FIELDS = ("id", "full_name", "created_at")


def sees_private(caller: Principal | None, user_id: int) -> bool:
    """Whether the caller may see the user's private fields (the email): the user or the admin."""
    return caller is not None and (caller.admin or caller.user_id == user_id)


def user_view(user: dict[str, Any], caller: Principal | None) -> dict[str, Any]:
    """A profile as this caller may see it: everything for its owner and the admin, else the
    public profile (id, name, created_at)."""
    if sees_private(caller, int(user["id"])):
        return user
    return {k: user[k] for k in PUBLIC_USER_FIELDS if k in user}


def posts_in(body: Any) -> list[dict[str, Any]]:
    """The posts in a documents-service answer (a list, or a page with `items`)."""
    items = body.get("items", []) if isinstance(body, dict) else body
    return [p for p in items if isinstance(p, dict)] if isinstance(items, list) else []


async def enrich_posts(*, gw: Gateway, body: Any) -> Any:
    """Add `author` and `group` summaries to each post: the brief's "Getting Group Feed" flow."""
    posts = posts_in(body)
    author_ids = {int(p["author_id"]) for p in posts if _is_id(p.get("author_id"))}
    group_ids = {int(p["group_id"]) for p in posts if _is_id(p.get("group_id"))}
    users, groups = await asyncio.gather(
        get_profiles(gw=gw, kind="user", ids=author_ids),
        get_profiles(gw=gw, kind="group", ids=group_ids),
    )
    for post in posts:
        user = users.get(post["author_id"]) if _is_id(post.get("author_id")) else None
        group = groups.get(post["group_id"]) if _is_id(post.get("group_id")) else None
        post["author"] = {"id": user["id"], "full_name": user["full_name"]} if user else None
        post["group"] = (
            {"id": group["id"], "name": group["name"], "course_code": group["course_code"]}
            if group
            else None
        )
    return body


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


async def counted_leaderboard(
    *, gw: Gateway, limiter: RateLimiter, address: str, user_id: int | None, limit: int
) -> tuple[Verdict, list[LeaderboardEntry]]:
    """The top users by points, with names, and the request's rate-limit counts: the counts
    and the ranking in one Redis round trip, the names' entries in a second. Over the limit,
    the verdict comes back with no entries; 503 when Redis (the ranking's only store) is down.
    """
    counts = 0

    def queue(pipe: Any) -> None:
        nonlocal counts
        counts = limiter.queue(pipe, address=address, user_id=user_id)
        gw.cache.queue_leaderboard(pipe, limit)

    try:
        results = await gw.cache.pipelined(queue)
    except CacheUnavailableError as exc:
        raise UnavailableError(
            "the leaderboard is unavailable: it lives only in Redis, which is down"
        ) from exc
    verdict = limiter.verdict(results[:counts])
    if not verdict.allowed:
        return verdict, []
    return verdict, await _named(gw=gw, rows=gw.cache.take_leaderboard(results[counts]))


async def _named(*, gw: Gateway, rows: list[tuple[int, float]]) -> list[LeaderboardEntry]:
    try:
        users = await get_profiles(gw=gw, kind="user", ids=[u for u, _ in rows])
    except UpstreamError:
        users = {}  # names are a nicety; the ranking itself is still right
    return [
        LeaderboardEntry(
            rank=i + 1,
            user_id=user_id,
            points=points,
            full_name=users[user_id]["full_name"] if user_id in users else None,
        )
        for i, (user_id, points) in enumerate(rows)
    ]


async def ensure_admin(*, gw: Gateway, retry_s: float = 2.0) -> None:
    """Create the admin account if it is missing, waiting for the users service if need be."""
    settings = gw.settings
    body = {
        "email": settings.admin_email,
        "full_name": "CampusConnect administrator",
        "password": settings.admin_password.get_secret_value(),
    }

    def users_not_ready(exc: BaseException) -> bool:
        return isinstance(exc, UpstreamError) and exc.status_code >= 500

    try:
        async for attempt in retrying(
            "creating the admin account", on=users_not_ready, log=log, initial_s=retry_s
        ):
            with attempt:
                await gw.upstream.call("users", "POST", "/users", json=body)
        log.info("admin account %s created", settings.admin_email)
    except UpstreamError as exc:
        if exc.status_code == 409:
            await _check_admin_password(gw=gw)
            return
        log.error("cannot create the admin account: %s", exc.body)


async def _check_admin_password(*, gw: Gateway) -> None:
    settings = gw.settings
    creds = {"email": settings.admin_email, "password": settings.admin_password.get_secret_value()}
    try:
        await gw.upstream.call("users", "POST", "/auth/verify", json=creds)
    except UpstreamError as exc:
        if exc.status_code == 404:
            log.error(
                "the account %s exists but does not take CAMPUS_ADMIN_PASSWORD: admin login is off",
                settings.admin_email,
            )
        return
    log.info("admin account %s present", settings.admin_email)
