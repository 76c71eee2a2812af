"""Helpers for the gateway's integration tests (a uniquely named module, so importing it
cannot pick up another folder's conftest)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
import orjson

from tests.helpers import unique_email

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_subject(token: str) -> int:
    payload = token.split(".")[1]
    return int(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def login(http: httpx.AsyncClient, base: str, email: str, password: str) -> str:
    resp = await http.post(f"{base}/auth/token", data={"username": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    return str(body["access_token"])


async def register(http: httpx.AsyncClient, base: str, *, name: str = "Ada Student") -> Account:
    email = unique_email("gw")
    resp = await http.post(
        f"{base}/users", json={"email": email, "full_name": name, "password": PASSWORD}
    )
    assert resp.status_code == 201, resp.text
    user = resp.json()
    return Account(id=user["id"], email=email, token=await login(http, base, email, PASSWORD))
