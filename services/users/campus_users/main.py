from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from campus_common import telemetry
from campus_common.logging import configure_logging
from campus_common.web import create_app
from campus_users import cdc
from campus_users.config import get_settings
from campus_users.routes import router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    configure_logging("users", settings.log_level)
    telemetry.setup(service="users", config=settings.tracing, libraries=("asyncpg",))
    # min_size=0: the service starts (and reports "degraded") while PostgreSQL is down.
    pool = await asyncpg.create_pool(
        settings.db.dsn(), min_size=0, max_size=settings.users_db_pool_max, command_timeout=10
    )
    app.state.pool = pool

    async def postgres() -> None:
        await pool.fetchval("SELECT 1")

    app.state.health_checks = {"postgres": postgres}
    exporter = asyncio.create_task(cdc.export_forever(pool))
    try:
        yield
    finally:
        exporter.cancel()
        await pool.close()


app = create_app(
    service="users",
    lifespan=lifespan,
    routers=[router, cdc.router],
    verifier=lambda: get_settings().verifier("users"),
)
