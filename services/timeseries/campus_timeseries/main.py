from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from campus_common import telemetry
from campus_common.consumer import ProjectionRunner
from campus_common.logging import configure_logging
from campus_common.projection_api import internal_router as projection_router
from campus_common.web import create_app
from campus_timeseries import service
from campus_timeseries.config import get_settings
from campus_timeseries.projection import TimeseriesProjection
from campus_timeseries.routes import router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    configure_logging("timeseries", settings.log_level)
    telemetry.setup(service="timeseries", config=settings.tracing, libraries=("psycopg",))
    # Opened without waiting: the service starts (and reports "degraded") while PostgreSQL
    # is down, and the pool connects in the background once it is back.
    pool = AsyncConnectionPool(
        settings.db.dsn(),
        min_size=1,
        max_size=settings.ts_db_pool_max,
        open=False,
        timeout=5,
        check=AsyncConnectionPool.check_connection,
        kwargs={"options": "-c statement_timeout=10000", "connect_timeout": 5},
        name="timeseries",
    )
    await pool.open(wait=False)
    app.state.pool = pool
    runner = ProjectionRunner(
        TimeseriesProjection(pool), kafka=settings.kafka, max_batch=settings.ts_projection_batch
    )
    app.state.projections = {"timeseries": runner}
    stop = asyncio.Event()
    upkeep = asyncio.create_task(
        service.maintain(
            pool=pool,
            refresh_s=settings.ts_rollup_refresh_s,
            partitions_ahead=settings.ts_partitions_ahead,
            stop=stop,
        ),
        name="timeseries-upkeep",
    )

    async def postgres() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    app.state.health_checks = {"postgres": postgres}
    if settings.timeseries_projection_enabled:
        await runner.start()
    try:
        yield
    finally:
        stop.set()
        await runner.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(upkeep, timeout=10)
        await pool.close()


app = create_app(
    service="timeseries",
    lifespan=lifespan,
    routers=[router, projection_router],
    verifier=lambda: get_settings().verifier("timeseries"),
)
