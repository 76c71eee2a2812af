"""A small client for the gateway's public and admin API, as the CLI uses it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
import tenacity
from pydantic import SecretStr

from campus_common.config import CampusSettings
from campus_common.retry import backoff


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


class TransientApiError(ApiError):
    """502/503/504: a service or store is briefly away; the same call may succeed later."""


TRANSIENT_STATUSES = (502, 503, 504)


def retrying_transient() -> tenacity.Retrying:
    """The CLI's one retry policy: on 502/503/504 or no answer, jittered backoff for 2 min."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((TransientApiError, httpx.TransportError)),
        wait=backoff(cap_s=8),
        stop=tenacity.stop_after_delay(120),
        reraise=True,
    )


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
            r = self.call_retrying(
                "POST", "/auth/token", data={"username": email, "password": password}, ok=(200,)
            )
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
            raise TransientApiError(r) if r.status_code in TRANSIENT_STATUSES else ApiError(r)
        return r

    def call_retrying(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`call`, retried with jittered backoff while the answer is a 502/503/504 or no answer.

        Only for calls that are safe to repeat: idempotent ones, or ones carrying an
        Idempotency-Key. A loaded machine answers 504 now and then; a seeder should wait.
        """
        for attempt in retrying_transient():
            with attempt:
                return self.call(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.call(method, path, token=self.admin_token(), **kwargs)
        return r.json() if r.content else None
