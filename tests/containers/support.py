"""Containers from the images `make images` builds, started from empty and always removed."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Ryuk (the reaper container) cannot be pulled here: every helper removes its own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import httpx
from pydantic import SecretStr
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from campus_common.config import StoreSettings
from campus_common.internal_auth import TRUSTED, OperatorAuth, Signer, generate_keypair

ROOT = Path(__file__).resolve().parents[2]
PG_COMMAND = [
    "postgres",
    "-c",
    "wal_level=logical",
    "-c",
    "max_replication_slots=10",
    "-c",
    "max_wal_senders=10",
]


def image(name: str) -> str:
    """The tag of one of stack/docker/images.txt's images."""
    for line in (ROOT / "stack" / "docker" / "images.txt").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return parts[1]
    raise KeyError(name)


@dataclass(frozen=True)
class Secrets:
    """Fresh credentials per test: nothing is shared with the native stack's .env."""

    pg_superuser: str = field(default_factory=lambda: secrets.token_hex(16))
    users_db: str = field(default_factory=lambda: secrets.token_hex(16))
    ts_db: str = field(default_factory=lambda: secrets.token_hex(16))
    docs_db: str = field(default_factory=lambda: secrets.token_hex(16))
    debezium: str = field(default_factory=lambda: secrets.token_hex(16))
    neo4j: str = field(default_factory=lambda: secrets.token_hex(16))
    redis: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt: str = field(default_factory=lambda: secrets.token_hex(32))
    admin: str = field(default_factory=lambda: secrets.token_hex(16))
    connect: str = field(default_factory=lambda: secrets.token_hex(16))
    # Ed25519 service-token keys, (signing, verify) per caller, made by the project's own code.
    keys: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            issuer: generate_keypair() for issuer in ("gateway", "documents", "graph", "operator")
        }
    )

    def stores(self, **ports: int) -> StoreSettings:
        """campus_common's one spelling of each store's address, for this test's containers
        (published on 127.0.0.1 at `ports`: pg_port, ts_pg_port, neo4j_bolt_port, ...)."""
        local = {f"{n}_host": "127.0.0.1" for n in ("pg", "ts_pg", "neo4j", "redis", "mongo")}
        return StoreSettings(
            host="127.0.0.1",
            **local,  # type: ignore[arg-type]
            **ports,  # type: ignore[arg-type]
            users_db_password=SecretStr(self.users_db),
            ts_db_password=SecretStr(self.ts_db),
            neo4j_password=SecretStr(self.neo4j),
            redis_password=SecretStr(self.redis),
        )

    def signing_env(self, issuer: str) -> dict[str, str]:
        """The caller's own private key, for its container alone."""
        return {f"CAMPUS_{issuer.upper()}_SIGNING_KEY": self.keys[issuer][0]}

    def verify_env(self, audience: str) -> dict[str, str]:
        """The public keys of the callers service `audience` trusts, as docker-compose.yml."""
        return {
            f"CAMPUS_{issuer.upper()}_VERIFY_KEY": self.keys[issuer][1]
            for issuer in sorted(TRUSTED[audience])
        }

    def connect_env(self) -> dict[str, str]:
        """Basic auth on Kafka Connect's REST API: for the worker and its registrar."""
        return {"CAMPUS_CONNECT_USER": "campus", "CAMPUS_CONNECT_PASSWORD": self.connect}

    def operator_auth(self, ports: dict[int, str]) -> OperatorAuth:
        """httpx auth signing operator tokens for the services on these published ports."""
        signer = Signer(issuer="operator", private_key=self.keys["operator"][0])
        return OperatorAuth(signer, ports)

    def migrate_env(self, pg_host: str = "postgres", ts_host: str = "postgres") -> dict[str, str]:
        """What docker-compose.yml's migrate job gets."""
        return {
            "CAMPUS_PG_HOST": pg_host,
            "CAMPUS_PG_PORT": "5432",
            "CAMPUS_TS_PG_HOST": ts_host,
            "CAMPUS_TS_PG_PORT": "5432",
            "CAMPUS_PG_SUPERUSER_PASSWORD": self.pg_superuser,
            "CAMPUS_USERS_DB_PASSWORD": self.users_db,
            "CAMPUS_TS_DB_PASSWORD": self.ts_db,
            "CAMPUS_DOCS_DB_PASSWORD": self.docs_db,
            "CAMPUS_DEBEZIUM_PASSWORD": self.debezium,
        }


class Containers:
    """Starts containers on one fresh bridge network; `close()` removes them and the network."""

    def __init__(self) -> None:
        self.network = Network().create()
        self._started: list[DockerContainer] = []

    def start(
        self,
        name: str,
        alias: str,
        *,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        publish: tuple[int, ...] = (),
        image_tag: str | None = None,
    ) -> DockerContainer:
        """Image `name` of images.txt (or `image_tag`), reachable as `alias` on the network."""
        c = (
            DockerContainer(image_tag or image(name))
            .with_network(self.network)
            .with_network_aliases(alias)
        )
        for key, value in (env or {}).items():
            c.with_env(key, value)
        if command:
            c.with_command(command)
        for port in publish:
            # Loopback only, on a free port: nothing of a test is reachable from outside.
            c.ports[f"{port}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        self._started.append(c)
        c.start()
        return c

    def run_job(
        self, alias: str, env: dict[str, str], command: list[str], timeout: float = 300
    ) -> str:
        """A one-shot container of the services image (migrate, connector registration)."""
        c = self.start("services", alias, env=env, command=command)
        wrapped = c.get_wrapped_container()
        code = wrapped.wait(timeout=timeout)["StatusCode"]
        logs = str(wrapped.logs().decode(errors="replace"))
        assert code == 0, f"{alias} exited {code}:\n{logs[-4000:]}"
        return logs

    def start_postgres(
        self, secrets: Secrets, *, publish: tuple[int, ...] = (), image_tag: str | None = None
    ) -> DockerContainer:
        """PostgreSQL with logical decoding, as `postgres` on the network (not awaited)."""
        return self.start(
            "postgres",
            "postgres",
            env={"POSTGRES_PASSWORD": secrets.pg_superuser},
            command=PG_COMMAND,
            publish=publish,
            image_tag=image_tag,
        )

    def migrate(self, pg: DockerContainer, secrets: Secrets) -> None:
        """Wait for PostgreSQL, then run the native migrations in a one-shot container."""
        wait_healthy(pg)
        self.run_job("migrate", secrets.migrate_env(), ["bash", "stack/postgres/init.sh"])

    def close(self) -> None:
        for c in reversed(self._started):
            c.stop()  # force-removes the container and its anonymous volumes
        self.network.remove()


@contextmanager
def containers() -> Iterator[Containers]:
    """A `Containers` that is removed whatever happens."""
    group = Containers()
    try:
        yield group
    finally:
        group.close()


def port(c: DockerContainer, container_port: int) -> int:
    """The loopback port a container port is published on."""
    return int(c.get_exposed_port(container_port))


def wait_until(what: str, probe: Callable[[], bool], timeout: float, c: DockerContainer) -> None:
    """Poll `probe` until true; on timeout or exit, fail with the container's log tail."""
    deadline = time.monotonic() + timeout
    while True:
        c.reload()
        if c.status in ("exited", "dead"):
            raise AssertionError(f"{what}: container {c.status}\n{_logs(c)}")
        try:
            if probe():
                return
        except Exception:  # noqa: S110 (not up yet: any failure means try again)
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {timeout:.0f}s\n{_logs(c)}")
        time.sleep(1)


def wait_healthy(c: DockerContainer, timeout: float = 180) -> None:
    """Until the image's own HEALTHCHECK says healthy."""

    def healthy() -> bool:
        info = c.get_wrapped_container().attrs["State"]
        return bool(info.get("Health", {}).get("Status") == "healthy")

    wait_until(c.image, healthy, timeout, c)


def wait_http(
    c: DockerContainer, url: str, timeout: float = 120, ok: tuple[int, ...] = (200,)
) -> None:
    """Until `url` answers with one of `ok`."""
    wait_until(url, lambda: httpx.get(url, timeout=2).status_code in ok, timeout, c)


def _logs(c: DockerContainer) -> str:
    out, err = c.get_logs()
    return (out + err).decode(errors="replace")[-4000:]


def service_command(name: str, port_: int) -> list[str]:
    """The same uvicorn command docker-compose.yml runs."""
    return ["uvicorn", f"campus_{name}.main:app", "--host", "0.0.0.0", "--port", str(port_)]  # noqa: S104
