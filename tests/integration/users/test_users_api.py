"""The users service against its real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import StackSettings
from tests.helpers import unique_email

pytestmark = pytest.mark.integration


def url(stack: StackSettings, path: str) -> str:
    return f"{stack.service_url('users')}{path}"


async def new_user(
    http: httpx.AsyncClient, stack: StackSettings, **extra: str
) -> dict[str, object]:
    body = {
        "email": unique_email(),
        "full_name": "Ada Student",
        "password": "correct horse",
        **extra,
    }
    resp = await http.post(url(stack, "/users"), json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_user_lifecycle_never_returns_the_password(
    stack: StackSettings, http: httpx.AsyncClient
) -> None:
    user = await new_user(http, stack)
    assert set(user) == {"id", "email", "full_name", "created_at", "updated_at"}
    got = (await http.get(url(stack, f"/users/{user['id']}"))).json()
    assert got == user
    upd = await http.put(url(stack, f"/users/{user['id']}"), json={"name": "Ada Lovelace"})
    assert upd.status_code == 200 and upd.json()["full_name"] == "Ada Lovelace"
    assert upd.json()["updated_at"] > user["updated_at"]
    assert "password" not in upd.text and "argon2" not in upd.text
    assert (await http.delete(url(stack, f"/users/{user['id']}"))).status_code == 204
    assert (await http.get(url(stack, f"/users/{user['id']}"))).status_code == 404
    assert (await http.delete(url(stack, f"/users/{user['id']}"))).status_code == 404


async def test_duplicate_email_is_409_case_insensitively(
    stack: StackSettings, http: httpx.AsyncClient
) -> None:
    user = await new_user(http, stack)
    again = await http.post(
        url(stack, "/users"),
        json={"email": str(user["email"]).upper(), "full_name": "X", "password": "12345678"},
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "full_name": "X", "password": "12345678"},
        {"email": "a@university.edu", "full_name": "", "password": "12345678"},
        {"email": "a@university.edu", "full_name": "X", "password": "short"},
        {"email": "a@university.edu", "full_name": "X", "password": "12345678", "is_admin": True},
        {"full_name": "X", "password": "12345678"},
    ],
)
async def test_invalid_users_are_422(
    stack: StackSettings, http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    resp = await http.post(url(stack, "/users"), json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"] == "invalid request"


async def test_unknown_or_out_of_range_ids(stack: StackSettings, http: httpx.AsyncClient) -> None:
    assert (await http.get(url(stack, "/users/999999999999"))).status_code == 404
    assert (await http.get(url(stack, "/users/99999999999999999999"))).status_code == 422
    assert (await http.get(url(stack, "/users/abc"))).status_code == 422


async def test_verify_credentials_checks_the_hash_inside(
    stack: StackSettings, http: httpx.AsyncClient
) -> None:
    user = await new_user(http, stack, password="s3cret-pass")
    ok = await http.post(
        url(stack, "/auth/verify"), json={"email": user["email"], "password": "s3cret-pass"}
    )
    assert ok.status_code == 200 and ok.json()["id"] == user["id"]
    bad = await http.post(
        url(stack, "/auth/verify"), json={"email": user["email"], "password": "wrong-pass"}
    )
    assert bad.status_code == 404


async def test_groups_and_memberships(stack: StackSettings, http: httpx.AsyncClient) -> None:
    alice, bob = await new_user(http, stack), await new_user(http, stack)
    group = (
        await http.post(url(stack, "/groups"), json={"name": "Databases", "course_code": "CS-450"})
    ).json()
    gid = group["id"]
    joined = await http.post(
        url(stack, f"/groups/{gid}/members"), json={"user_id": alice["id"], "role": "admin"}
    )
    assert joined.status_code == 201 and joined.json()["role"] == "admin"
    again = await http.post(url(stack, f"/groups/{gid}/members"), json={"user_id": alice["id"]})
    assert again.status_code == 409
    assert (
        await http.post(url(stack, f"/groups/{gid}/members"), json={"user_id": bob["id"]})
    ).status_code == 201
    bad_role = await http.post(
        url(stack, f"/groups/{gid}/members"), json={"user_id": bob["id"], "role": "king"}
    )
    assert bad_role.status_code == 422
    missing_user = await http.post(
        url(stack, f"/groups/{gid}/members"), json={"user_id": 999999999999}
    )
    assert missing_user.status_code == 404 and "user" in missing_user.json()["detail"]
    missing_group = await http.post(
        url(stack, "/groups/999999999999/members"), json={"user_id": bob["id"]}
    )
    assert missing_group.status_code == 404 and "group" in missing_group.json()["detail"]

    members = (await http.get(url(stack, f"/groups/{gid}/members"))).json()
    assert [m["user_id"] for m in members] == [alice["id"], bob["id"]]
    assert (await http.get(url(stack, f"/groups/{gid}"))).json()["member_count"] == 2
    assert (await http.get(url(stack, f"/groups/{gid}/members/{bob['id']}"))).status_code == 200
    assert (await http.delete(url(stack, f"/groups/{gid}/members/{bob['id']}"))).status_code == 204
    assert (await http.get(url(stack, f"/groups/{gid}/members/{bob['id']}"))).status_code == 404
    # Deleting a user cascades to their memberships.
    await http.delete(url(stack, f"/users/{alice['id']}"))
    assert (await http.get(url(stack, f"/groups/{gid}"))).json()["member_count"] == 0


async def test_keyset_pagination(stack: StackSettings, http: httpx.AsyncClient) -> None:
    for _ in range(3):
        await new_user(http, stack)
    first = (await http.get(url(stack, "/users"), params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    second = (
        await http.get(url(stack, "/users"), params={"limit": 2, "after": first["next_after"]})
    ).json()
    assert second["items"][0]["id"] > first["items"][-1]["id"]
