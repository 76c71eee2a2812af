"""A small client for the gateway's public and admin API, as the CLI uses it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
from pydantic import SecretStr

from campus_common.config import CampusSettings


class CliSettings(CampusSettings):
    admin_email: str
    admin_password: SecretStr
    jwt_secret: SecretStr


@lru_cache
def settings() -> CliSettings:
    return CliSettings()


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {detail}"
        )
        self.status_code = response.status_code


class Gateway:
    """Synchronous: the CLI does one thing at a time and prints as it goes."""

    def __init__(self, base_url: str | None = None, timeout: float = 15) -> None:
        self.http = httpx.Client(
            base_url=base_url or settings().service_url("gateway"), timeout=timeout
        )
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def token(self, email: str, password: str) -> str:
        if email not in self._tokens:
            r = self.http.post("/auth/token", data={"username": email, "password": password})
            if r.status_code != 200:
                raise ApiError(r)
            self._tokens[email] = r.json()["access_token"]
        return self._tokens[email]

    def admin_token(self) -> str:
        s = settings()
        return self.token(s.admin_email, s.admin_password.get_secret_value())

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = self.http.request(method, path, headers=headers, **kwargs)
        if r.status_code not in ok:
            raise ApiError(r)
        return r

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.call(method, path, token=self.admin_token(), **kwargs)
        return r.json() if r.content else None
