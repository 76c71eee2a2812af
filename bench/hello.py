"""The anchors of M4: the smallest FastAPI JSON app, served by uvicorn as the services are, and
the same app making the one Redis round trip a cached gateway read makes (the floor of any
Python gateway in front of Redis on this machine, before its own middleware, auth and tracing).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from bench import fixtures


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = fixtures.product_redis()
    try:
        yield
    finally:
        await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/redis/{key}")
async def one_get(key: str) -> Response:
    """One pipelined GET, its bytes returned as they are (what a cache hit costs at the least)."""
    async with app.state.redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        (value,) = await pipe.execute()
    return Response(value or b"{}", media_type="application/json")
