"""The documents service on a fresh FerretDB container (on a fresh PostgreSQL), beside the
users service it asks about members. Kafka is deliberately absent: a post is still written,
with its event kept in the post's own outbox until Kafka comes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from tests.containers.support import (
    Secrets,
    containers,
    port,
    service_command,
    wait_healthy,
    wait_http,
)
from tests.helpers import unique_email

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class DocsStack:
    secrets: Secrets
    mongo_port: int
    users_url: str
    docs_url: str
    ports: dict[int, str]


@pytest.fixture
def docs_stack() -> Iterator[DocsStack]:
    s = Secrets()
    with containers() as group:
        pg = group.start_postgres(s)
        group.migrate(pg, s)
        ferret = group.start(
            "ferretdb",
            "mongo",
            env={"FERRETDB_POSTGRESQL_URL": "postgres://postgres:5432/campus_docs?sslmode=disable"},
            publish=(27017,),
        )
        users = group.start(
            "services",
            "users",
            env={
                "CAMPUS_PG_HOST": "postgres",
                "CAMPUS_PG_PORT": "5432",
                "CAMPUS_USERS_DB_PASSWORD": s.users_db,
                **s.verify_env("users"),
            },
            command=service_command("users", 8001),
            publish=(8001,),
        )
        wait_healthy(ferret)
        docs = group.start(
            "services",
            "documents",
            env={
                "CAMPUS_MONGO_HOST": "mongo",
                "CAMPUS_MONGO_PORT": "27017",
                "CAMPUS_MONGO_AUTH_MECHANISM": "PLAIN",
                "CAMPUS_DOCS_DB_PASSWORD": s.docs_db,
                "CAMPUS_KAFKA_HOST": "kafka",
                "CAMPUS_USERS_HOST": "users",
                "CAMPUS_USERS_PORT": "8001",
                **s.signing_env("documents"),
                **s.verify_env("documents"),
            },
            command=service_command("documents", 8002),
            publish=(8002,),
        )
        users_url = f"http://127.0.0.1:{port(users, 8001)}"
        docs_url = f"http://127.0.0.1:{port(docs, 8002)}"
        wait_http(users, f"{users_url}/health")
        # 503 = up, with the outbox relay waiting for the (absent) Kafka.
        wait_http(docs, f"{docs_url}/health", ok=(200, 503))
        ports = {port(users, 8001): "users", port(docs, 8002): "documents"}
        yield DocsStack(s, port(ferret, 27017), users_url, docs_url, ports)


async def test_a_post_lands_in_ferretdb_with_its_event_in_the_outbox(docs_stack: DocsStack) -> None:
    auth = docs_stack.secrets.operator_auth(docs_stack.ports)
    async with httpx.AsyncClient(timeout=15, auth=auth) as http:
        user = await http.post(
            f"{docs_stack.users_url}/users",
            json={"email": unique_email(), "full_name": "Doc Writer", "password": "s3cret-pass"},
        )
        assert user.status_code == 201, user.text
        uid = user.json()["id"]
        group = await http.post(
            f"{docs_stack.users_url}/groups",
            json={"name": "Containers 101", "course_code": "CS-101"},
        )
        assert group.status_code == 201, group.text
        gid = group.json()["id"]
        joined = await http.post(
            f"{docs_stack.users_url}/groups/{gid}/members", json={"user_id": uid}
        )
        assert joined.status_code == 201, joined.text

        post = await http.post(
            f"{docs_stack.docs_url}/groups/{gid}/posts",
            json={"author_id": uid, "type": "question", "title": "Fresh store?", "body": "Yes."},
        )
        assert post.status_code == 201, post.text
        post_id = post.json()["id"]
        feed = await http.get(f"{docs_stack.docs_url}/groups/{gid}/posts/feed")
        assert feed.status_code == 200, feed.text
        assert [p["id"] for p in feed.json()["items"]] == [post_id]

    stores = docs_stack.secrets.stores(mongo_port=docs_stack.mongo_port)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        **stores.mongo_client_options(SecretStr(docs_stack.secrets.docs_db))
    )
    try:
        posts = client["campus"]["posts"]
        assert await posts.count_documents({}) == 1  # an empty store before this test
        stored = await posts.find_one({})
        assert stored is not None and stored["title"] == "Fresh store?"
        # No Kafka: the post.created event waits in the post's own outbox.
        assert stored["pending"] is True and stored["outbox"], stored
    finally:
        await client.close()
