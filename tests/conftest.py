"""Shared fixtures. Integration tests talk to the running native stack (`make up`)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from campus_common.config import StoreSettings
from campus_common.internal_auth import OperatorAuth, Signer

ROOT = Path(__file__).resolve().parents[1]


class StackSettings(StoreSettings):
    """Every variable of .env, secrets included: tests reach every store directly."""

    pg_superuser_password: SecretStr
    docs_db_password: SecretStr
    debezium_password: SecretStr
    jwt_secret: SecretStr
    admin_email: str
    admin_password: SecretStr
    operator_signing_key: SecretStr
    gateway_signing_key: SecretStr
    connect_password: SecretStr
    kafka_controller_port: int = 9093

    def operator_auth(self) -> OperatorAuth:
        """httpx auth signing the operator's service tokens for the internal services' ports
        (requests to the gateway are left alone); `X-User-Id` names the user to act for."""
        signer = Signer(issuer="operator", private_key=self.operator_signing_key.get_secret_value())
        return OperatorAuth(signer, self.service_ports())

    def superuser_dsn(self, database: str) -> str:
        """A database as the superuser (schema changes in tests)."""
        return self.superuser_db(database, self.pg_superuser_password).dsn()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def stack(settings: StackSettings) -> StackSettings:
    """The running native stack; `stack/up.sh` starts it when supervisord is not running.

    When it is running, a closed port means a component is restarting (a test or a developer
    restarted it): wait for it rather than start things behind its owner's back.
    """
    ports = [
        settings.pg_port,
        settings.redis_port,
        settings.kafka_port,
        settings.connect_port,
        settings.neo4j_bolt_port,
        settings.mongo_port,
        settings.users_port,
        settings.documents_port,
        settings.graph_port,
        settings.timeseries_port,
        settings.gateway_port,
        settings.zipkin_port,
    ]
    supervised = (ROOT / ".stack" / "run" / "supervisor.sock").exists()
    if not supervised:
        subprocess.run([str(ROOT / "stack" / "up.sh")], check=True, timeout=1200)
    deadline = time.monotonic() + 90
    while closed := [p for p in ports if not _port_open(settings.host, p)]:
        if time.monotonic() > deadline:
            pytest.fail(f"ports {closed} stay closed: is the stack up? (make up; make status)")
        time.sleep(1)
    return settings


@pytest.fixture
async def http(stack: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as client:
        yield client
