from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from campus_common import telemetry
from campus_common.internal_auth import ServiceAuth, Signer
from campus_common.logging import configure_logging
from campus_common.retry import retrying
from campus_common.web import create_app
from campus_documents import repository as repo
from campus_documents.config import Settings, get_settings
from campus_documents.feed import FeedCache, FeedFollower
from campus_documents.memberships import Memberships
from campus_documents.relay import OutboxRelay
from campus_documents.routes import router
from campus_documents.service import Store, adopt_embedded_likes
from campus_documents.users_client import UsersClient

log = logging.getLogger(__name__)


async def _prepare(store: Store, ready: asyncio.Event, relay: OutboxRelay) -> None:
    # The unique indexes (idempotency keys, one like per user, one lease per key) must exist
    # before the first write, and likes kept inside old posts must have their documents before
    # the first like is taken: requests get a 503 until then. Meanwhile the app serves /health
    # (degraded), so the stack sees it is up.
    async for attempt in retrying("document store indexes", on=PyMongoError, log=log):
        with attempt:
            await repo.ensure_indexes(store.db)
    async for attempt in retrying("likes kept inside posts", on=PyMongoError, log=log):
        with attempt:
            if moved := await adopt_embedded_likes(store=store):
                log.info("moved %d likes kept inside posts into the likes collection", moved)
    ready.set()
    await relay.start()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = get_settings()
    configure_logging("documents", settings.log_level)
    telemetry.setup(service="documents", config=settings.tracing, libraries=("pymongo", "aiokafka"))
    client: AsyncMongoClient[repo.Doc] = AsyncMongoClient(**settings.mongo_options())
    signer = Signer(
        issuer="documents", private_key=settings.documents_signing_key.get_secret_value()
    )
    http = httpx.AsyncClient(
        base_url=settings.service_url("users"),
        timeout=settings.users_timeout_s,
        auth=ServiceAuth(signer, "users"),
    )
    relay: OutboxRelay | None = None
    follower: FeedFollower | None = None
    preparing: asyncio.Task[None] | None = None
    memberships = Memberships(settings.kafka)
    try:
        db = client[settings.docs_db_name]
        feed = None
        if settings.feed_cache_enabled:
            feed = FeedCache(
                groups=settings.feed_cache_groups,
                page=settings.feed_cache_page,
                ttl_s=settings.feed_cache_ttl_s,
                max_lag_s=settings.feed_cache_max_lag_s,
            )
            follower = FeedFollower(feed, kafka=settings.kafka, topic=settings.docs_events_topic)
        store = Store(db=db, feed=feed)
        relay = OutboxRelay(
            db=db,
            kafka=settings.kafka,
            update_slots=store.update_slots,
            batch_size=settings.relay_batch,
            idle_s=settings.relay_idle_s,
            topic=settings.docs_events_topic,
        )
        app.state.store = dataclasses.replace(store, wake=relay.notify)
        await memberships.start()
        if follower is not None:
            await follower.start()
        app.state.users = UsersClient(http, memberships)
        app.state.memberships = memberships
        app.state.relay = relay

        async def mongo() -> None:
            await repo.ping(db)

        app.state.health_checks = {"mongo": mongo, "outbox_relay": relay.check}
        app.state.ready = asyncio.Event()
        preparing = asyncio.create_task(_prepare(store, app.state.ready, relay), name="prepare")
        yield
    finally:
        if preparing is not None and not preparing.done():
            preparing.cancel()
        if relay is not None:
            await relay.stop()
        if follower is not None:
            await follower.stop()
        await memberships.stop()
        await http.aclose()
        await client.close()


app = create_app(
    service="documents",
    lifespan=lifespan,
    routers=[router],
    verifier=lambda: get_settings().verifier("documents"),
)


@app.exception_handler(ConnectionFailure)
async def store_unavailable(request: Request, exc: ConnectionFailure) -> JSONResponse:
    # PyMongo's network errors are not OSError, so the shared 503 handler does not see them.
    log.warning("document store unavailable on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the document store is unavailable, try again shortly"}, status_code=503
    )


# FerretDB answers `InternalError` (code 1) when its own PostgreSQL goes away under it: the
# server shut down (SQLSTATE 57P01..57P03) or the connection failed (class 08). That is the
# store being unavailable, not a bug of ours: 503, as for a lost connection to FerretDB itself.
_BACKEND_GONE = ("SQLSTATE 57P0", "SQLSTATE 08", "connection refused")


@app.exception_handler(OperationFailure)
async def store_backend_gone(request: Request, exc: OperationFailure) -> JSONResponse:
    if exc.code == 1 and any(mark in str(exc) for mark in _BACKEND_GONE):
        log.warning(
            "document store unavailable on %s %s: %r", request.method, request.url.path, exc
        )
        return JSONResponse(
            {"detail": "the document store is unavailable, try again shortly"}, status_code=503
        )
    raise exc
