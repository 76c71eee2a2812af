"""Settings for benchmarks: every variable of .env, secrets included."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import StoreSettings
from campus_common.internal_auth import OperatorAuth, Signer

# The services that run a projection; on the cluster topology each runs twice.
PROJECTION_SERVICES = ("graph", "timeseries", "gateway")


class BenchSettings(StoreSettings):
    pg_superuser_password: SecretStr
    admin_email: str
    admin_password: SecretStr
    operator_signing_key: SecretStr
    # `make up TOPOLOGY=cluster` writes CAMPUS_TOPOLOGY=cluster to .stack/data/topology.env.
    topology: str = "single"
    # The cluster's instance ports (.env); HAProxy holds the services' own ports there.
    graph_1_port: int = 0
    graph_2_port: int = 0
    timeseries_1_port: int = 0
    timeseries_2_port: int = 0
    gateway_1_port: int = 0
    gateway_2_port: int = 0
    # The gateway's uvicorn workers (stack/lib.sh `gateway_workers`): `auto` is the cores.
    gateway_workers: str = "auto"

    def gateway_worker_count(self) -> int:
        """CAMPUS_GATEWAY_WORKERS resolved as stack/lib.sh resolves it for the gateway."""
        if self.gateway_workers == "auto":
            return len(os.sched_getaffinity(0))  # what `nproc` counts
        count = int(self.gateway_workers)
        if count < 1:
            raise ValueError(f"CAMPUS_GATEWAY_WORKERS must be ≥ 1 or auto, not {count}")
        return count

    def operator_auth(self) -> OperatorAuth:
        """Signs the operator's service tokens for calls to the internal services."""
        key = self.operator_signing_key.get_secret_value()
        ports = self.service_ports()
        for service in PROJECTION_SERVICES:
            ports |= {port: service for port in self.instance_ports(service)}
        return OperatorAuth(Signer(issuer="operator", private_key=key), ports)

    def instance_ports(self, service: str) -> list[int]:
        """The ports of a projection service's two instances on the cluster; none otherwise."""
        if self.topology != "cluster":
            return []
        return [p for n in (1, 2) if (p := getattr(self, f"{service}_{n}_port"))]

    def operator_headers(self, audience: str) -> dict[str, str]:
        """The operator's Authorization header for one service, for load tools (wrk) that
        cannot sign per request: a token lives 60 s, longer than any one wrk run here."""
        key = self.operator_signing_key.get_secret_value()
        return Signer(issuer="operator", private_key=key).headers(audience=audience)

    def superuser_dsn(self, database: str) -> str:
        """A database as the superuser (bench schemas, figures against raw tables)."""
        return self.superuser_db(database, self.pg_superuser_password).dsn()


@lru_cache
def settings() -> BenchSettings:
    return BenchSettings()
