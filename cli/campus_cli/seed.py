"""`campus seed`: a populated campus through the public API (so every projection sees it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from pathlib import Path
from typing import Any

from rich.progress import Progress

from campus_cli.client import ApiError, Gateway, retrying_transient, settings
from campus_common.config import ROOT

SEED_USERS = [
    "Alice Johnson",
    "Bob Martinez",
    "Chen Wei",
    "Dana Okafor",
    "Elif Yilmaz",
    "Farid Haddad",
    "Grace Kim",
    "Hugo Lefebvre",
    "Isha Patel",
    "Jonas Berg",
]
# 1-based pairs of SEED_USERS: a small social graph with friend-of-friend structure.
SEED_FRIENDS = [
    (1, 2),
    (1, 3),
    (2, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 6),
    (6, 7),
    (7, 8),
    (8, 9),
    (9, 10),
    (1, 10),
    (4, 8),
]
SEED_FOLLOWS = [(2, 1), (5, 1), (7, 3), (10, 4)]


def email_for(index: int) -> str:
    first = (
        SEED_USERS[index - 1].split()[0].lower() if index <= len(SEED_USERS) else f"student{index}"
    )
    return f"{first}.seed{index}@university.edu"


def password_for(email: str) -> str:
    """Reproducible per machine (re-seeding can log in again), never the same on two machines."""
    key = settings().jwt_secret.get_secret_value().encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:20]


def _comment_key(post_key: str, comment: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{comment['author']}:{comment['body']}".encode()).hexdigest()[:16]
    return f"{post_key}-c-{digest}"


def _user(gw: Gateway, index: int, name: str) -> tuple[int, str, bool]:
    """The seeded user's id and token, and whether this call created the account."""
    email = email_for(index)
    password = password_for(email)
    try:
        r = gw.call_retrying(
            "POST", "/users", json={"email": email, "full_name": name, "password": password}
        )
        user_id = int(r.json()["id"])
    except ApiError as exc:
        if exc.status_code != 409:
            raise
        user_id = -1
    token = gw.token(email, password)
    if user_id < 0:  # seeded before: the token says who we are
        return int(_claims(token)["sub"]), token, False
    return user_id, token, True


def _group(gw: Gateway, token: str, name: str, course_code: str) -> tuple[int, bool]:
    """The group's id, creating it if no group has this name and course code yet.

    Creating a group is not idempotent, so each attempt looks first: a create that timed out
    may still have happened.
    """
    created = False
    for attempt in retrying_transient():
        with attempt:
            for g in _all_groups(gw):
                if (g["name"], g["course_code"]) == (name, course_code):
                    return int(g["id"]), created
            body = {"name": name, "course_code": course_code}
            r = gw.call("POST", "/groups", token=token, json=body)
            created = True
            return int(r.json()["id"]), created
    raise AssertionError("unreachable: tenacity reraises the last error")


def _all_groups(gw: Gateway) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = gw.call("GET", "/groups", params={"limit": 500, "after": after}).json()
        items += page["items"]
        if not page.get("next_after"):
            return items
        after = page["next_after"]


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def run(*, extra_users: int, posts_file: Path = ROOT / "posts.json") -> dict[str, int]:
    """Seed users, groups, memberships, friendships, follows, posts, comments and likes."""
    data: dict[str, Any] = json.loads(posts_file.read_text())
    n_users = max(int(data["users"]), len(SEED_USERS)) + extra_users
    gw = Gateway()
    counts = dict.fromkeys(("users", "groups", "memberships", "friendships", "posts"), 0)
    try:
        with Progress() as progress:
            task = progress.add_task("users", total=n_users)
            users: dict[int, tuple[int, str]] = {}
            for i in range(1, n_users + 1):
                name = SEED_USERS[i - 1] if i <= len(SEED_USERS) else f"Student {i}"
                uid, token, created = _user(gw, i, name)
                users[i] = (uid, token)
                counts["users"] += created
                progress.advance(task)

            groups: dict[int, int] = {}
            task = progress.add_task("groups", total=len(data["groups"]))
            for g in data["groups"]:
                _owner_id, owner_token = users[g["members"][0]]
                group_id, created = _group(gw, owner_token, g["name"], g["course_code"])
                counts["groups"] += created
                groups[g["index"]] = group_id
                for pos, member in enumerate(g["members"]):
                    uid, token = users[member]
                    # Only the admin account may grant a role above member (the gateway refuses
                    # a member promoting themselves), so the group's first member is made its
                    # admin by the admin account, as an operator would.
                    r = gw.call_retrying(
                        "POST",
                        f"/groups/{groups[g['index']]}/join",
                        token=gw.admin_token() if pos == 0 else token,
                        ok=(200, 201, 409),
                        json={"user_id": uid, "role": "admin" if pos == 0 else "member"},
                    )
                    counts["memberships"] += r.status_code == 201
                progress.advance(task)

            rng = random.Random(2026)
            pairs = list(SEED_FRIENDS)
            for i in range(len(SEED_USERS) + 1, n_users + 1):  # synthetic users: a few friends each
                pairs += [(i, rng.randint(1, i - 1)) for _ in range(3)]
            task = progress.add_task("friendships", total=len(pairs) + len(SEED_FOLLOWS))
            for a, b in pairs:
                if a == b:
                    continue
                ua, ta = users[a]
                r = gw.call_retrying(
                    "POST", f"/users/{ua}/friends/{users[b][0]}", token=ta, ok=(200, 201)
                )
                counts["friendships"] += r.status_code == 201
                progress.advance(task)
            for a, b in SEED_FOLLOWS:
                ua, ta = users[a]
                gw.call_retrying(
                    "POST",
                    "/follow",
                    token=ta,
                    ok=(200, 201),
                    json={"follower_id": ua, "followee_id": users[b][0]},
                )
                progress.advance(task)

            task = progress.add_task("posts", total=len(data["posts"]))
            for p in data["posts"]:
                author_id, token = users[p["author"]]
                body = {k: p[k] for k in ("type", "title", "body", "tags", "attachments") if k in p}
                body["author_id"] = author_id
                headers = {"Idempotency-Key": p["key"]}
                if p.get("group"):
                    r = gw.call_retrying(
                        "POST",
                        f"/groups/{groups[p['group']]}/posts",
                        token=token,
                        json=body,
                        headers=headers,
                    )
                else:
                    r = gw.call_retrying("POST", "/posts", token=token, json=body, headers=headers)
                post = r.json()
                post_id = post.get("id") or post.get("_id")
                if r.status_code == 201 and r.headers.get("Idempotent-Replayed") != "true":
                    counts["posts"] += 1
                for c in p.get("comments", []):
                    cid, ctoken = users[c["author"]]
                    gw.call_retrying(
                        "POST",
                        f"/posts/{post_id}/comments",
                        token=ctoken,
                        json={"author_id": cid, "body": c["body"]},
                        headers={"Idempotency-Key": _comment_key(p["key"], c)},
                    )
                for liker in p.get("likes", []):
                    lid, ltoken = users[liker]
                    gw.call_retrying(
                        "POST", f"/posts/{post_id}/like", token=ltoken, json={"user_id": lid}
                    )
                progress.advance(task)
    finally:
        gw.close()
    return counts
