from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from campus_common.logging import configure_logging
from campus_common.web import create_app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_logging("timeseries")
    yield


app = create_app(service="timeseries", lifespan=lifespan, routers=[])
