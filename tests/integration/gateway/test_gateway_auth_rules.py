"""Who may do what through the gateway: 401 without a valid token, 403 acting as someone else."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import jwt
import orjson
import pytest
from gateway_helpers import PASSWORD, Account, login, register

from tests.conftest import StackSettings

pytestmark = pytest.mark.integration


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def forged(user_id: int, secret: str, **over: object) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "admin": False,
    }
    return jwt.encode({**claims, **over}, secret, algorithm="HS256")


async def test_bad_tokens_are_refused_with_401(
    http: httpx.AsyncClient, gw: str, account: Account, stack: StackSettings
) -> None:
    secret = stack.jwt_secret.get_secret_value()
    now = int(time.time())
    bad = {
        "missing": None,
        "expired": forged(account.id, secret, iat=now - 600, exp=now - 60),
        "wrong signature": forged(account.id, "not-the-secret-" + secret),
        "alg none": ".".join(
            [
                _b64({"alg": "none", "typ": "JWT"}),
                _b64({"sub": str(account.id), "exp": now + 60}),
                "",
            ]
        ),
        "not a jwt": "hello",
    }
    body = {"name": "Hackers Anonymous", "course_code": "X-1"}
    for case, token in bad.items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        resp = await http.post(f"{gw}/groups", json=body, headers=headers)
        assert resp.status_code == 401, (case, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "detail" in resp.json()
    # The same secret with valid claims is accepted: the refusals above are about the token.
    ok = await http.post(
        f"{gw}/groups", json=body, headers={"Authorization": f"Bearer {forged(account.id, secret)}"}
    )
    assert ok.status_code == 201, ok.text


async def test_wrong_password_is_401(http: httpx.AsyncClient, gw: str, account: Account) -> None:
    resp = await http.post(
        f"{gw}/auth/token", data={"username": account.email, "password": "wrong-password"}
    )
    assert resp.status_code == 401
    resp = await http.post(f"{gw}/auth/token", data={"username": "not-an-email", "password": "x"})
    assert resp.status_code == 401


async def test_a_user_cannot_act_as_another(
    http: httpx.AsyncClient, gw: str, account: Account, other: Account
) -> None:
    group = (
        await http.post(
            f"{gw}/groups", json={"name": "G", "course_code": "C-1"}, headers=account.auth
        )
    ).json()
    await http.post(f"{gw}/groups/{group['id']}/join", json={}, headers=account.auth)
    post = await http.post(
        f"{gw}/groups/{group['id']}/posts", json={"title": "mine"}, headers=account.auth
    )
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    me, them = account, other
    attempts = [
        ("PUT", f"/users/{me.id}", {"full_name": "Pwned"}),
        ("DELETE", f"/users/{me.id}", None),
        ("POST", f"/users/{me.id}/friends/{them.id}", None),
        ("DELETE", f"/users/{me.id}/friends/{them.id}", None),
        ("POST", "/follow", {"follower_id": me.id, "followee_id": them.id}),
        ("POST", f"/groups/{group['id']}/join", {"user_id": me.id, "role": "member"}),
        ("DELETE", f"/groups/{group['id']}/members/{me.id}", None),
        ("POST", f"/groups/{group['id']}/posts", {"author_id": me.id, "title": "as you"}),
        ("POST", "/posts", {"author_id": me.id, "title": "as you"}),
        ("POST", f"/posts/{post_id}/comments", {"author_id": me.id, "body": "as you"}),
        ("POST", f"/posts/{post_id}/like", {"user_id": me.id}),
        ("PUT", f"/posts/{post_id}", {"title": "edited by someone else"}),
        ("DELETE", f"/posts/{post_id}", None),
    ]
    for method, path, body in attempts:
        resp = await http.request(method, f"{gw}{path}", json=body, headers=them.auth)
        assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
    # Nothing changed.
    assert (await http.get(f"{gw}/users/{me.id}")).json()["full_name"] == "Ada Student"
    assert (await http.get(f"{gw}/posts/{post_id}")).json()["title"] == "mine"


async def test_roles_above_member_need_the_admin(
    http: httpx.AsyncClient, gw: str, account: Account, admin: Account
) -> None:
    group = (
        await http.post(
            f"{gw}/groups", json={"name": "G", "course_code": "C-2"}, headers=account.auth
        )
    ).json()
    body = {"user_id": account.id, "role": "admin"}
    resp = await http.post(f"{gw}/groups/{group['id']}/join", json=body, headers=account.auth)
    assert resp.status_code == 403
    resp = await http.post(f"{gw}/groups/{group['id']}/join", json=body, headers=admin.auth)
    assert resp.status_code == 201 and resp.json()["role"] == "admin"


async def test_the_admin_may_act_for_anyone(
    http: httpx.AsyncClient, gw: str, account: Account, other: Account, admin: Account
) -> None:
    post = await http.post(f"{gw}/posts", json={"title": "to be moderated"}, headers=account.auth)
    post_id = post.json()["id"]
    edited = await http.put(
        f"{gw}/posts/{post_id}", json={"title": "moderated"}, headers=admin.auth
    )
    assert edited.status_code == 200 and edited.json()["title"] == "moderated"
    resp = await http.post(f"{gw}/users/{account.id}/friends/{other.id}", headers=admin.auth)
    assert resp.status_code == 201, resp.text
    assert (await http.delete(f"{gw}/posts/{post_id}", headers=admin.auth)).status_code == 204
    assert (await http.delete(f"{gw}/users/{other.id}", headers=admin.auth)).status_code == 204


async def test_admin_routes_are_admin_only(
    http: httpx.AsyncClient, gw: str, account: Account, admin: Account
) -> None:
    for method, path in [("GET", "/projections"), ("PUT", "/admin/rate-limits/user/1")]:
        body = {"limit": 10} if method == "PUT" else None
        assert (await http.request(method, f"{gw}{path}", json=body)).status_code == 401
        resp = await http.request(method, f"{gw}{path}", json=body, headers=account.auth)
        assert resp.status_code == 403, resp.text
    resp = await http.get(f"{gw}/projections", headers=admin.auth)
    assert resp.status_code == 200 and resp.json()[0]["name"] == "cache"


async def test_the_admin_email_cannot_be_registered_or_taken(
    http: httpx.AsyncClient, gw: str, account: Account, stack: StackSettings
) -> None:
    body = {"email": stack.admin_email.upper(), "full_name": "Mallory", "password": PASSWORD}
    assert (await http.post(f"{gw}/users", json=body)).status_code == 409
    resp = await http.put(
        f"{gw}/users/{account.id}", json={"email": stack.admin_email}, headers=account.auth
    )
    assert resp.status_code == 409


async def test_a_deleted_users_token_stops_working(http: httpx.AsyncClient, gw: str) -> None:
    user = await register(http, gw)
    second_token = await login(http, gw, user.email, PASSWORD)
    assert (await http.delete(f"{gw}/users/{user.id}", headers=user.auth)).status_code == 204
    resp = await http.post(
        f"{gw}/groups",
        json={"name": "ghost", "course_code": "G-0"},
        headers={"Authorization": f"Bearer {second_token}"},
    )
    assert resp.status_code == 401
    assert "no longer exists" in resp.json()["detail"]


async def test_bad_input_is_a_clear_4xx(http: httpx.AsyncClient, gw: str, account: Account) -> None:
    short = await http.post(
        f"{gw}/users", json={"email": "x@y.edu", "name": "X", "password": "short"}
    )
    assert short.status_code == 422 and short.json()["detail"] == "invalid request"
    assert (await http.get(f"{gw}/users/0")).status_code == 422
    assert (await http.get(f"{gw}/users/99999999999999999999")).status_code == 422
    assert (await http.get(f"{gw}/posts/not-an-object-id")).status_code == 404
    assert (await http.get(f"{gw}/posts/%24where")).status_code == 422
    injected = await http.post(
        f"{gw}/posts", json={"title": "t", "$where": "1"}, headers=account.auth
    )
    assert injected.status_code == 422
    huge = await http.post(
        f"{gw}/posts",
        content=b"x" * 1_100_000,
        headers={**account.auth, "content-type": "application/json"},
    )
    assert huge.status_code == 413
