from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from neo4j import AsyncDriver, AsyncGraphDatabase, NotificationDisabledClassification
from neo4j.exceptions import (
    ConnectionAcquisitionTimeoutError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from campus_common import projection_api, telemetry
from campus_common.consumer import ProjectionRunner
from campus_common.internal_auth import ServiceAuth, Signer
from campus_common.kafka import broker_reachable
from campus_common.logging import configure_logging
from campus_common.web import create_app
from campus_graph import repository as repo
from campus_graph.config import get_settings
from campus_graph.consumers import GraphChange, GraphProjection
from campus_graph.outbox import OutboxRelay
from campus_graph.routes import router

log = logging.getLogger(__name__)


async def _bootstrap(
    driver: AsyncDriver, runner: ProjectionRunner[GraphChange], *, project: bool
) -> None:
    # Constraints first: MERGE is only race-free with them. Neo4j may still be starting.
    delay = 0.5
    while True:
        try:
            await repo.ensure_schema(driver)
            break
        except Exception as exc:
            log.warning("neo4j schema not ready, retrying in %.1fs: %r", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    if project:
        await runner.start()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    configure_logging("graph", settings.log_level)
    telemetry.setup(service="graph", config=settings.tracing, libraries=("aiokafka", "neo4j"))
    # The driver connects lazily, so the service starts (and reports "degraded") without Neo4j.
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()),
        connection_timeout=settings.neo4j_connect_timeout_s,
        max_transaction_retry_time=settings.neo4j_retry_time_s,
        # The outbox poll names properties that exist only while events are queued.
        notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED],
    )
    signer = Signer(issuer="graph", private_key=settings.graph_signing_key.get_secret_value())
    users = httpx.AsyncClient(
        base_url=settings.service_url("users"),
        timeout=settings.users_timeout_s,
        auth=ServiceAuth(signer, "users"),
    )
    relay = OutboxRelay(
        driver=driver,
        kafka=settings.kafka,
        poll_s=settings.outbox_poll_s,
        batch=settings.outbox_batch,
    )
    runner = ProjectionRunner(GraphProjection(driver), kafka=settings.kafka)
    app.state.driver = driver
    app.state.users = users
    app.state.relay = relay
    app.state.projections = {"graph": runner}

    async def neo4j() -> None:
        await repo.ping(driver)

    async def kafka() -> None:
        await broker_reachable(settings.kafka)

    app.state.health_checks = {"neo4j": neo4j, "kafka": kafka}
    bootstrap = asyncio.create_task(
        _bootstrap(driver, runner, project=settings.graph_projection_enabled),
        name="graph-bootstrap",
    )
    await relay.start()
    try:
        yield
    finally:
        bootstrap.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bootstrap
        await runner.stop()
        await relay.stop()
        await users.aclose()
        await driver.close()


app = create_app(
    service="graph",
    lifespan=lifespan,
    routers=[router, projection_api.internal_router],
    verifier=lambda: get_settings().verifier("graph"),
)


async def _neo4j_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("neo4j unavailable on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the graph database is unavailable, try again shortly"}, 503)


for _exc in (ServiceUnavailable, SessionExpired, TransientError, ConnectionAcquisitionTimeoutError):
    app.add_exception_handler(_exc, _neo4j_unavailable)
