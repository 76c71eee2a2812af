"""Who may call each write endpoint of the gateway: anonymous, the user, another user, the admin.

The endpoints come from the live /openapi.json, so a new write endpoint fails this test until it
has a rule below. Every cell starts from its own fresh state (a new post, a new victim account),
so a refusal in one cell cannot hide behind a success in another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest

from tests.e2e.security.security_helpers import PASSWORD, Account, register
from tests.helpers import unique_email

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(180)]

Role = Literal["anonymous", "other", "user", "admin"]
# Refusals first: a cell that wrongly succeeded would otherwise change what the next one sees.
ROLES: tuple[Role, ...] = ("anonymous", "other", "user", "admin")
WRITE_METHODS = {"post", "put", "patch", "delete"}
# Real projections, so the admin's cells run the success paths: the gateway's own `cache` for
# its /projections routes (pause, then resume, then rebuild: the resume cell undoes the pause),
# and the graph service's `graph` behind /admin/consumers (resume: a no-op while it runs).
GATEWAY_PROJECTION = "cache"
REMOTE_PROJECTION = "graph"


@dataclass(frozen=True)
class World:
    http: httpx.AsyncClient
    alice: Account  # the acting user in the "user" column, whose data the others target
    bob: Account  # the "other" column: a valid token, someone else
    carol: Account  # a friend / followee for alice
    admin: Account
    group_id: int  # alice is a member
    post_id: str  # alice's

    async def new_group(self, *, with_alice: bool) -> int:
        r = await self.http.post(
            "/groups",
            json={"name": "Authz matrix", "course_code": "SEC-A"},
            headers=self.alice.auth,
        )
        assert r.status_code == 201, r.text
        group_id = int(r.json()["id"])
        if with_alice:
            r = await self.http.post(f"/groups/{group_id}/join", json={}, headers=self.alice.auth)
            assert r.status_code == 201, r.text
        return group_id

    async def new_post(self) -> str:
        r = await self.http.post("/posts", json={"title": "alice's"}, headers=self.alice.auth)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    owner: Account  # whose token the "user" column sends
    json: Any = None
    data: dict[str, str] | None = None


Who = Literal["public", "signed-in", "self", "admin"]


@dataclass(frozen=True)
class Rule:
    """Who may call an endpoint, and how to set up one call to it from scratch."""

    who: Who
    prepare: Callable[[World], Awaitable[Call]]
    # Answers other than 2xx that still show a permitted caller got past authorization.
    permitted: frozenset[int] = frozenset()


def expected(rule: Rule, role: Role) -> str:
    """'401', '403' or 'ok' (2xx, or one of the rule's documented answers)."""
    if rule.who == "public":
        return "ok"
    if role == "anonymous":
        return "401"
    if rule.who == "signed-in" or role == "admin":
        return "ok"
    if rule.who == "admin" or role == "other":
        return "403"
    return "ok"


async def _token(w: World) -> Call:
    return Call(
        "POST", "/auth/token", w.alice, data={"username": w.alice.email, "password": PASSWORD}
    )


async def _register(w: World) -> Call:
    body = {"email": unique_email("authz"), "full_name": "New", "password": PASSWORD}
    return Call("POST", "/users", w.alice, json=body)


async def _edit_user(w: World) -> Call:
    return Call("PUT", f"/users/{w.alice.id}", w.alice, json={"full_name": "Alice Edited"})


async def _delete_user(w: World) -> Call:
    victim = await register(w.http, "Authz Victim")
    return Call("DELETE", f"/users/{victim.id}", victim)


async def _create_group(w: World) -> Call:
    return Call("POST", "/groups", w.alice, json={"name": "Any", "course_code": "SEC-G"})


async def _join(w: World) -> Call:
    group_id = await w.new_group(with_alice=False)
    return Call("POST", f"/groups/{group_id}/join", w.alice, json={"user_id": w.alice.id})


async def _leave(w: World) -> Call:
    group_id = await w.new_group(with_alice=True)
    return Call("DELETE", f"/groups/{group_id}/members/{w.alice.id}", w.alice)


async def _group_post(w: World) -> Call:
    body = {"title": "in the group", "author_id": w.alice.id}
    return Call("POST", f"/groups/{w.group_id}/posts", w.alice, json=body)


async def _post(w: World) -> Call:
    return Call("POST", "/posts", w.alice, json={"title": "flat", "author_id": w.alice.id})


async def _edit_post(w: World) -> Call:
    return Call("PUT", f"/posts/{await w.new_post()}", w.alice, json={"title": "edited"})


async def _delete_post(w: World) -> Call:
    return Call("DELETE", f"/posts/{await w.new_post()}", w.alice)


async def _comment(w: World) -> Call:
    body = {"author_id": w.alice.id, "body": "a comment"}
    return Call("POST", f"/posts/{w.post_id}/comments", w.alice, json=body)


async def _like(w: World) -> Call:
    return Call("POST", f"/posts/{await w.new_post()}/like", w.alice, json={"user_id": w.alice.id})


async def _befriend(w: World) -> Call:
    return Call("POST", f"/users/{w.alice.id}/friends/{w.carol.id}", w.alice)


async def _unfriend(w: World) -> Call:
    return Call("DELETE", f"/users/{w.alice.id}/friends/{w.carol.id}", w.alice)


async def _follow(w: World) -> Call:
    body = {"follower_id": w.alice.id, "followee_id": w.carol.id}
    return Call("POST", "/follow", w.alice, json=body)


async def _unfollow(w: World) -> Call:
    body = {"follower_id": w.alice.id, "followee_id": w.carol.id}
    return Call("DELETE", "/follow", w.alice, json=body)


async def _consumer_control(w: World) -> Call:
    return Call("POST", f"/admin/consumers/{REMOTE_PROJECTION}/resume", w.alice)


def _projection_control(action: str) -> Callable[[World], Awaitable[Call]]:
    async def prepare(w: World) -> Call:
        return Call("POST", f"/projections/{GATEWAY_PROJECTION}/{action}", w.alice)

    return prepare


async def _set_limit(w: World) -> Call:
    # Unlimited for a minute, for alice only; _clear_limit's cell and the test's end undo it.
    body = {"limit": 0, "window_s": 60, "ttl_s": 60}
    return Call("PUT", f"/admin/rate-limits/user/{w.alice.id}", w.alice, json=body)


async def _clear_limit(w: World) -> Call:
    return Call("DELETE", f"/admin/rate-limits/user/{w.alice.id}", w.alice)


RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/auth/token"): Rule("public", _token),
    ("POST", "/users"): Rule("public", _register),
    ("PUT", "/users/{user_id}"): Rule("self", _edit_user),
    ("DELETE", "/users/{user_id}"): Rule("self", _delete_user),
    ("POST", "/groups"): Rule("signed-in", _create_group),
    ("POST", "/groups/{group_id}/join"): Rule("self", _join),
    ("DELETE", "/groups/{group_id}/members/{user_id}"): Rule("self", _leave),
    ("POST", "/groups/{group_id}/posts"): Rule("self", _group_post),
    ("POST", "/posts"): Rule("self", _post),
    ("PUT", "/posts/{post_id}"): Rule("self", _edit_post),
    ("DELETE", "/posts/{post_id}"): Rule("self", _delete_post),
    ("POST", "/posts/{post_id}/comments"): Rule("self", _comment),
    ("POST", "/posts/{post_id}/like"): Rule("self", _like),
    ("POST", "/users/{user_id}/friends/{other_id}"): Rule("self", _befriend),
    ("DELETE", "/users/{user_id}/friends/{other_id}"): Rule("self", _unfriend),
    ("POST", "/follow"): Rule("self", _follow),
    ("DELETE", "/follow"): Rule("self", _unfollow),
    ("POST", "/admin/consumers/{name}/{action}"): Rule("admin", _consumer_control),
    ("POST", "/projections/{name}/pause"): Rule("admin", _projection_control("pause")),
    ("POST", "/projections/{name}/resume"): Rule("admin", _projection_control("resume")),
    ("POST", "/projections/{name}/rebuild"): Rule("admin", _projection_control("rebuild")),
    ("PUT", "/admin/rate-limits/{scope}/{subject}"): Rule("admin", _set_limit),
    ("DELETE", "/admin/rate-limits/{scope}/{subject}"): Rule("admin", _clear_limit),
}


@pytest.fixture
async def world(gw: httpx.AsyncClient, admin: Account) -> World:
    alice = await register(gw, "Alice Authz")
    bob = await register(gw, "Bob Authz")
    carol = await register(gw, "Carol Authz")
    seed = World(gw, alice, bob, carol, admin, group_id=0, post_id="")
    group_id = await seed.new_group(with_alice=True)
    return World(gw, alice, bob, carol, admin, group_id, await seed.new_post())


def _token_of(w: World, role: Role, call: Call) -> dict[str, str]:
    account = {"anonymous": None, "other": w.bob, "user": call.owner, "admin": w.admin}[role]
    return account.auth if account else {}


def _verdict(status: int, rule: Rule) -> str:
    if status in (401, 403):
        return str(status)
    return "ok" if 200 <= status < 300 or status in rule.permitted else f"unexpected {status}"


async def test_every_write_endpoint_has_a_rule(gw: httpx.AsyncClient) -> None:
    spec = (await gw.get("/openapi.json")).json()
    writes = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in WRITE_METHODS
    }
    assert writes - RULES.keys() == set(), "write endpoints without an authorization rule"
    assert RULES.keys() - writes == set(), "rules for endpoints the gateway no longer has"


async def test_authorization_matrix(world: World) -> None:
    mismatches: list[str] = []
    try:
        for (method, template), rule in RULES.items():
            for role in ROLES:
                call = await rule.prepare(world)
                assert call.method == method, (call, method)
                resp = await world.http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.data,
                    headers=_token_of(world, role, call),
                )
                got, want = _verdict(resp.status_code, rule), expected(rule, role)
                if got != want:
                    mismatches.append(
                        f"{method} {template} as {role}: want {want}, got {resp.status_code} "
                        f"{resp.text[:200]}"
                    )
                elif got == "401":
                    assert resp.headers.get("www-authenticate") == "Bearer", (method, template)
                if resp.status_code >= 400:
                    assert "detail" in resp.json(), (method, template, resp.text)
    finally:
        admin = world.admin.auth
        await world.http.delete(f"/admin/rate-limits/user/{world.alice.id}", headers=admin)
        # Never leave a projection paused for the tests after this one.
        await world.http.post(f"/projections/{GATEWAY_PROJECTION}/resume", headers=admin)
        await world.http.post(f"/admin/consumers/{REMOTE_PROJECTION}/resume", headers=admin)
    assert not mismatches, "\n".join(mismatches)
