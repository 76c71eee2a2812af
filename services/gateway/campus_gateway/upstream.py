"""Pooled HTTP clients for the four services, and the one way the gateway calls them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from campus_common.internal_auth import Signer
from campus_common.retry import retrying
from campus_gateway.auth import Principal
from campus_gateway.config import SERVICES, Settings

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
# The request never reached the service (or a pooled keep-alive socket had died): safe to
# repeat for idempotent methods only, since a POST may have been applied before the failure.
RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.PoolTimeout)
# Headers worth passing on to a service; everything else stays at the gateway.
FORWARDED_HEADERS = ("idempotency-key",)

QueryParams = Sequence[tuple[str, str | int]] | Mapping[str, str | int] | None


class UpstreamError(Exception):
    """A service answered with an error, or could not be reached; carries the reply to send."""

    def __init__(self, status_code: int, body: dict[str, Any], service: str) -> None:
        super().__init__(f"{service}: {status_code} {body}")
        self.status_code = status_code
        self.body = body
        self.service = service


class Reply:
    """A service's successful answer, kept as bytes so it can be passed through unparsed."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(
        self, status_code: int, content: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers or {}

    def json(self) -> Any:
        return orjson.loads(self.content) if self.content else None


class Upstream:
    """One pooled httpx client per service, created in the lifespan."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        timeout = httpx.Timeout(
            settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
        )
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
        )
        self.retries = settings.upstream_retries
        self.signer = Signer(
            issuer="gateway", private_key=settings.gateway_signing_key.get_secret_value()
        )
        self.clients = {
            name: httpx.AsyncClient(
                base_url=settings.service_url(name),
                timeout=timeout,
                limits=limits,
                transport=transport,
            )
            for name in SERVICES
        }

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: QueryParams = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        actor: Principal | None = None,
    ) -> Reply:
        """Send one request signed for `service`, acting for `actor` (the verified caller, or
        None for no user); 2xx → Reply, anything else → UpstreamError with a clear body."""
        client = self.clients[service]
        headers = {
            **(headers or {}),
            **self.signer.headers(
                audience=service,
                user_id=actor.user_id if actor else None,
                admin=actor.admin if actor else False,
            ),
        }
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        try:
            # A refused or reset connection is retried (idempotent methods only) at once-ish:
            # the request is waiting, and a pooled connection closed by the peer is the usual case.
            async for attempt in retrying(
                f"{service} {method} {path}",
                on=RETRYABLE,
                log=log,
                attempts=attempts,
                initial_s=0.05,
                cap_s=0.2,
            ):
                with attempt:
                    resp = await client.request(
                        method, path, params=_query(params), json=json, headers=headers
                    )
        except RETRYABLE as exc:
            log.warning("%s unreachable on %s %s: %r", service, method, path, exc)
            raise unavailable(service) from exc
        except httpx.TimeoutException as exc:
            log.warning("%s timed out on %s %s: %r", service, method, path, exc)
            raise UpstreamError(
                504,
                {"detail": f"the {service} service did not answer in time", "service": service},
                service,
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("%s failed on %s %s: %r", service, method, path, exc)
            raise unavailable(service) from exc
        if resp.status_code < 400:
            return Reply(resp.status_code, resp.content, _response_headers(resp))
        raise _error_from(service, resp)


def _query(params: QueryParams) -> httpx.QueryParams | None:
    if params is None:
        return None
    pairs = params.items() if isinstance(params, Mapping) else params
    return httpx.QueryParams(tuple((k, v) for k, v in pairs))


def unavailable(service: str) -> UpstreamError:
    return UpstreamError(
        503,
        {"detail": f"the {service} service is unavailable, try again shortly", "service": service},
        service,
    )


def _error_from(service: str, resp: httpx.Response) -> UpstreamError:
    if resp.status_code < 500:
        # The service's own 4xx explains the problem to the caller: pass it through unchanged.
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text[:500] or resp.reason_phrase}
        if not isinstance(body, dict):
            body = {"detail": body}
        return UpstreamError(resp.status_code, body, service)
    if resp.status_code in (503, 504):
        # The service is up but one of its own stores is not.
        detail = f"the {service} service cannot reach its store, try again shortly"
        return UpstreamError(503, {"detail": detail, "service": service}, service)
    log.error("%s answered %d: %s", service, resp.status_code, resp.text[:500])
    return UpstreamError(
        502, {"detail": f"the {service} service failed", "service": service}, service
    )


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The few client headers a service gets (who acts travels in the signed service token)."""
    return {h: headers[h] for h in FORWARDED_HEADERS if h in headers}


# Response headers of a service that mean something to the client and pass the gateway.
RESPONSE_HEADERS = ("Idempotent-Replayed",)


def _response_headers(resp: httpx.Response) -> dict[str, str]:
    return {h: resp.headers[h] for h in RESPONSE_HEADERS if h in resp.headers}
