"""The users service on a fresh PostgreSQL container with logical decoding, migrated by the
same job docker-compose runs; a logical slot sees the service's insert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from tests.containers.support import (
    ROOT,
    Secrets,
    containers,
    port,
    service_command,
    wait_http,
)
from tests.helpers import unique_email

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class UsersStack:
    secrets: Secrets
    pg_port: int
    users_url: str
    users_port: int

    def superuser_dsn(self, database: str) -> str:
        stores = self.secrets.stores(pg_port=self.pg_port)
        return stores.superuser_db(database, SecretStr(self.secrets.pg_superuser)).dsn()


@pytest.fixture
def users_stack() -> Iterator[UsersStack]:
    s = Secrets()
    with containers() as group:
        pg = group.start_postgres(s, publish=(5432,))
        group.migrate(pg, s)
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
        url = f"http://127.0.0.1:{port(users, 8001)}"
        wait_http(users, f"{url}/health")
        yield UsersStack(s, port(pg, 5432), url, port(users, 8001))


async def test_users_service_writes_through_logical_decoding(users_stack: UsersStack) -> None:
    conn = await asyncpg.connect(users_stack.superuser_dsn("campus"))
    try:
        assert await conn.fetchval("SHOW wal_level") == "logical"
        # Every migration in sql/ applied, once, on an empty server.
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert applied == len(list((ROOT / "sql").glob("*.sql")))
        # The slot exists before the write, so the write must show up in it.
        await conn.execute("SELECT pg_create_logical_replication_slot('tc_probe', 'test_decoding')")
        email = unique_email()
        auth = users_stack.secrets.operator_auth({users_stack.users_port: "users"})
        async with httpx.AsyncClient(base_url=users_stack.users_url, timeout=10, auth=auth) as http:
            # Only signed callers: a request without a service token is refused.
            async with httpx.AsyncClient(base_url=users_stack.users_url) as bare:
                anonymous = await bare.get("/users")
            assert anonymous.status_code == 401, anonymous.text
            created = await http.post(
                "/users",
                json={"email": email, "full_name": "Container Student", "password": "s3cret-pass"},
            )
            assert created.status_code == 201, created.text
            uid = created.json()["id"]
            got = await http.get(f"/users/{uid}")
            assert got.status_code == 200 and got.json()["email"] == email
            assert "password" not in got.text
        changes = await conn.fetch(
            "SELECT data FROM pg_logical_slot_get_changes('tc_probe', NULL, NULL)"
        )
        inserts = [r["data"] for r in changes if r["data"].startswith("table public.users: INSERT")]
        assert len(inserts) == 1 and f"id[bigint]:{uid} " in inserts[0], changes
        await conn.execute("SELECT pg_drop_replication_slot('tc_probe')")
    finally:
        await conn.close()
