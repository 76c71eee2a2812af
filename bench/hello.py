"""The anchors of M4: the smallest FastAPI JSON app, served by uvicorn as the services are, and
the same app making the one Redis round trip a cached gateway read makes (the floor of any
Python gateway in front of Redis on this machine, before its own middleware, auth and tracing),
or the one insert_one a created post needs (the same floor for the documents service).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId
from fastapi import FastAPI, Request, Response
from pymongo import AsyncMongoClient

from bench import fixtures
from campus_documents import repository as docs_repo
from campus_documents.config import Settings as DocumentsSettings
from campus_documents.service import stored_post


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = fixtures.product_redis()
    docs = DocumentsSettings()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**docs.mongo_options())
    app.state.posts = mongo[docs.docs_db_name][docs_repo.POSTS]
    try:
        yield
    finally:
        await app.state.redis.aclose()
        await mongo.close()


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


@app.post("/posts/{group_id}/{author_id}", status_code=201)
async def one_insert(group_id: int, author_id: int, request: Request) -> Response:
    """The JSON body stored as a post with one insert_one (no check, no event, no trace)."""
    content = orjson.loads(await request.body())
    content.pop("author_id", None)
    oid = ObjectId()
    post = stored_post(
        oid=oid,
        author_id=author_id,
        group_id=group_id,
        content=content,
        at=datetime.now(UTC),
        idempotency_key=f"bench:{oid}",
        request_hash="bench",
    )
    await request.app.state.posts.insert_one(post)
    return Response(orjson.dumps({"id": str(oid)}), status_code=201, media_type="application/json")
