"""Accounts for the security suite, made through the public gateway like any client would."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
import orjson

from tests.helpers import unique_email

PASSWORD = "security suite password"


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_subject(token: str) -> int:
    """The user id a token was issued to (read without verifying: the gateway issued it)."""
    payload = token.split(".")[1]
    return int(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    resp = await http.post("/auth/token", data={"username": email, "password": password})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


async def register(http: httpx.AsyncClient, name: str = "Security Probe") -> Account:
    """A fresh account with a token; `http` has the gateway as its base URL."""
    email = unique_email("sec")
    resp = await http.post("/users", json={"email": email, "full_name": name, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    return Account(resp.json()["id"], email, await login(http, email, PASSWORD))
