"""Private data stays private: emails only for their owner and the admin, revealing or heavy
reads need a login or the admin, comments and likes follow group membership."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.security.security_helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(180)]

PUBLIC = {"id", "full_name", "created_at"}


async def test_a_profile_shows_the_email_to_its_owner_and_the_admin_only(
    gw: httpx.AsyncClient, user: Account, other: Account, admin: Account
) -> None:
    url = f"/users/{user.id}"
    for headers in ({}, other.auth):
        public = await gw.get(url, headers=headers)
        assert public.status_code == 200 and set(public.json()) == PUBLIC, public.text
    for headers in (user.auth, admin.auth):
        assert (await gw.get(url, headers=headers)).json()["email"] == user.email
    listed = (await gw.get("/users", params={"limit": 500})).json()["items"]
    assert listed and all(set(u) == PUBLIC for u in listed)
    as_admin = (await gw.get("/users", params={"limit": 500}, headers=admin.auth)).json()
    assert all("email" in u for u in as_admin["items"])


async def test_friend_lists_need_a_login_and_show_no_emails(
    gw: httpx.AsyncClient, user: Account, other: Account, admin: Account
) -> None:
    made = await gw.post(f"/users/{user.id}/friends/{other.id}", headers=user.auth)
    assert made.status_code == 201, made.text
    url = f"/users/{user.id}/friends"
    assert (await gw.get(url)).status_code == 401
    items = (await gw.get(url, headers=other.auth)).json()["items"]
    assert [f["id"] for f in items] == [other.id] and "email" not in items[0]
    assert (await gw.get(url, headers=admin.auth)).json()["items"][0]["email"] == other.email


@pytest.mark.parametrize(
    ("path", "anonymous", "user_status"),
    [
        ("/graph?limit=5", 401, 403),
        ("/cache-status", 401, 403),
        ("/relationships?limit=5", 401, 200),
        ("/relationships?limit=5&offset=5000", 401, 403),
    ],
)
async def test_revealing_and_heavy_reads(
    gw: httpx.AsyncClient,
    user: Account,
    admin: Account,
    path: str,
    anonymous: int,
    user_status: int,
) -> None:
    assert (await gw.get(path)).status_code == anonymous
    assert (await gw.get(path, headers=user.auth)).status_code == user_status
    assert (await gw.get(path, headers=admin.auth)).status_code == 200


async def test_a_users_activity_is_theirs(
    gw: httpx.AsyncClient, user: Account, other: Account, admin: Account
) -> None:
    for path in (f"/analytics/users/{user.id}/activity",):
        assert (await gw.get(path)).status_code == 401, path
        assert (await gw.get(path, headers=other.auth)).status_code == 403, path
        assert (await gw.get(path, headers=user.auth)).status_code == 200, path
        assert (await gw.get(path, headers=admin.auth)).status_code == 200, path


async def test_group_members_and_activity_need_a_login(
    gw: httpx.AsyncClient, user: Account
) -> None:
    group = await gw.post(
        "/groups", json={"name": "Private", "course_code": "P-1"}, headers=user.auth
    )
    gid = group.json()["id"]
    for path in (f"/groups/{gid}/members", f"/groups/{gid}/activity", f"/users/{user.id}/groups"):
        assert (await gw.get(path)).status_code == 401, path
        assert (await gw.get(path, headers=user.auth)).status_code == 200, path


async def test_comments_and_likes_follow_group_membership(
    gw: httpx.AsyncClient, user: Account, other: Account
) -> None:
    group = await gw.post(
        "/groups", json={"name": "Members", "course_code": "M-1"}, headers=user.auth
    )
    gid = group.json()["id"]
    assert (await gw.post(f"/groups/{gid}/join", json={}, headers=user.auth)).status_code == 201
    post = await gw.post(f"/groups/{gid}/posts", json={"title": "members only"}, headers=user.auth)
    assert post.status_code == 201, post.text
    pid = post.json()["id"]
    comment = await gw.post(f"/posts/{pid}/comments", json={"body": "hi"}, headers=other.auth)
    assert comment.status_code == 403, comment.text
    like = await gw.post(f"/posts/{pid}/like", headers=other.auth)
    assert like.status_code == 403, like.text
    assert (await gw.post(f"/groups/{gid}/join", json={}, headers=other.auth)).status_code == 201
    comment = await gw.post(f"/posts/{pid}/comments", json={"body": "hi"}, headers=other.auth)
    assert comment.status_code == 201, comment.text
    assert (await gw.post(f"/posts/{pid}/like", headers=other.auth)).status_code == 200
