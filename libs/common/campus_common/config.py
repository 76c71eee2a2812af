"""Settings pieces every service composes; values come from the environment and `.env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from campus_common.internal_auth import ISSUERS, TRUSTED, Verifier
from campus_common.telemetry import TracingConfig

ROOT = Path(__file__).resolve().parents[3]
PLACEHOLDER = "__generate__"
# Under supervisord each process gets only its own variables (stack/scoped.sh): reading .env
# back would hand it every other component's secrets.
# `make up TOPOLOGY=cluster` writes the cluster's settings (bootstrap list, replication factor,
# Redis Cluster mode) to .stack/data/topology.env; it wins over .env and is absent otherwise.
ENV_FILE = (
    None
    if os.environ.get("CAMPUS_ENV_SCOPED")
    else (ROOT / ".env", ROOT / ".stack" / "data" / "topology.env")
)


class PostgresDsn(BaseModel):
    """Where one PostgreSQL database lives and who logs into it."""

    host: str
    port: int
    database: str
    user: str
    password: SecretStr

    def dsn(self) -> str:
        """libpq URL with the password percent-encoded."""
        pw = quote(self.password.get_secret_value(), safe="")
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{self.database}"


# Databases and roles sql/ and TimeScaleDB.sql create (stack/postgres/init.sh), spelled once.
USERS_DB = "campus"
USERS_ROLE = "campus_users"
TS_DB = "campus_ts"
TS_ROLE = "campus_ts"
SUPERUSER = "postgres"
NEO4J_USER = "neo4j"


class KafkaConfig(BaseModel):
    """How to reach the Kafka cluster and how durable the topics the services create are."""

    # One `host:port` or a comma-separated list (any live broker of the list will do).
    bootstrap_servers: str
    # 1/1 for the single-node topology; the cluster topology sets 3/2, so an acknowledged
    # write (acks=all) is on two brokers before the producer hears back.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _isr_fits(self) -> KafkaConfig:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError("min_insync_replicas cannot exceed replication_factor")
        return self


class CampusSettings(BaseSettings):
    """The flat `CAMPUS_*` variables shared by all services; each service subclasses it."""

    model_config = SettingsConfigDict(
        env_prefix="CAMPUS_", env_file=ENV_FILE, extra="ignore", frozen=True
    )

    environment: str = "development"
    host: str = "127.0.0.1"
    pg_port: int = 5432
    redis_port: int = 6379
    kafka_port: int = 9092
    connect_port: int = 8083
    neo4j_bolt_port: int = 7687
    neo4j_http_port: int = 7474
    mongo_port: int = 27017
    gateway_port: int = 8000
    users_port: int = 8001
    documents_port: int = 8002
    graph_port: int = 8003
    timeseries_port: int = 8004
    zipkin_port: int = 9411
    # The cluster topology (make up TOPOLOGY=cluster) lists every broker here; empty means the
    # one broker at kafka_host:kafka_port.
    kafka_bootstrap_servers: str = ""
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    # Redis Cluster: the client discovers the other nodes from redis_host:redis_port.
    redis_cluster: bool = False
    log_level: str = "INFO"
    # Tracing: on and 100 % sampled for the classroom; the bench lowers the ratio or turns it off.
    otel_enabled: bool = True
    otel_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # Natively everything is on CAMPUS_HOST; in docker-compose each server has its own name.
    pg_host: str = ""
    ts_pg_host: str = ""
    ts_pg_port: int = 0
    redis_host: str = ""
    kafka_host: str = ""
    connect_host: str = ""
    neo4j_host: str = ""
    mongo_host: str = ""
    # The documents database and how to sign in to it (the password is the documents service's
    # secret, passed to mongo_client_options). FerretDB v1 only speaks PLAIN (checked by
    # PostgreSQL, `$external`); MongoDB 7 (docker-compose) wants SCRAM-SHA-256 against `admin`.
    docs_db_user: str = "campus_docs"
    docs_db_name: str = "campus"
    mongo_auth_mechanism: str = "PLAIN"
    mongo_auth_source: str = ""
    gateway_host: str = ""
    users_host: str = ""
    documents_host: str = ""
    graph_host: str = ""
    timeseries_host: str = ""
    # Public keys of the callers the internal services trust (not secrets; see internal_auth).
    gateway_verify_key: str = ""
    documents_verify_key: str = ""
    graph_verify_key: str = ""
    operator_verify_key: str = ""
    connect_user: str = "campus"
    zipkin_host: str = ""
    # The Zipkin UI as a browser reaches it (the dashboard links traces there).
    zipkin_public_url: str = ""

    @model_validator(mode="after")
    def _default_hosts(self) -> CampusSettings:
        for name in type(self).model_fields:
            if name.endswith("_host") and not getattr(self, name):
                object.__setattr__(self, name, self.host)
        if not self.zipkin_public_url:
            url = f"http://{self.host}:{self.zipkin_port}/zipkin"
            object.__setattr__(self, "zipkin_public_url", url)
        if not self.ts_pg_port:
            object.__setattr__(self, "ts_pg_port", self.pg_port)
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> CampusSettings:
        # A secret still reading the template placeholder means .env was never generated.
        for name, value in self:
            if not isinstance(value, SecretStr):
                continue
            secret = value.get_secret_value()
            if secret == PLACEHOLDER or (not secret and self.environment != "development"):
                raise ValueError(
                    f"CAMPUS_{name.upper()} is not set: run `make up` to generate .env"
                )
        return self

    @property
    def kafka(self) -> KafkaConfig:
        """The brokers and the topics' durability."""
        return KafkaConfig(
            bootstrap_servers=self.kafka_bootstrap_servers
            or f"{self.kafka_host}:{self.kafka_port}",
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
        )

    def verifier(self, audience: str) -> Verifier:
        """What checks the service tokens sent to `audience`."""
        keys = {issuer: getattr(self, f"{issuer}_verify_key") for issuer in ISSUERS}
        return Verifier(audience=audience, public_keys=keys)

    def service_ports(self) -> dict[int, str]:
        """Internal service by port, for the operator's clients (natively all on one host)."""
        return {getattr(self, f"{name}_port"): name for name in TRUSTED}

    @property
    def tracing(self) -> TracingConfig:
        """Where spans go and how many are sampled."""
        return TracingConfig(
            enabled=self.otel_enabled,
            zipkin_endpoint=f"http://{self.zipkin_host}:{self.zipkin_port}/api/v2/spans",
            sample_ratio=self.otel_sample_ratio,
        )

    # How to reach each store: the one place an address is spelled. Services, the CLI, the
    # tests and the bench pass the password they hold (each process holds only its own).

    def users_db(self, password: SecretStr) -> PostgresDsn:
        """The users service's database, as its own role."""
        return PostgresDsn(
            host=self.pg_host,
            port=self.pg_port,
            database=USERS_DB,
            user=USERS_ROLE,
            password=password,
        )

    def ts_db(self, password: SecretStr) -> PostgresDsn:
        """The time-series database, as the time-series service's role."""
        return PostgresDsn(
            host=self.ts_pg_host,
            port=self.ts_pg_port,
            database=TS_DB,
            user=TS_ROLE,
            password=password,
        )

    def superuser_db(self, database: str, password: SecretStr) -> PostgresDsn:
        """A database as the superuser (migrations, tests); campus_ts on its own server when
        it has one (docker-compose's TimescaleDB), every other on the main one."""
        ts = database == TS_DB
        return PostgresDsn(
            host=self.ts_pg_host if ts else self.pg_host,
            port=self.ts_pg_port if ts else self.pg_port,
            database=database,
            user=SUPERUSER,
            password=password,
        )

    @property
    def neo4j_uri(self) -> str:
        """Neo4j's Bolt address."""
        return f"bolt://{self.neo4j_host}:{self.neo4j_bolt_port}"

    def redis_options(self, password: SecretStr) -> dict[str, Any]:
        """Keyword arguments for a redis-py client (add pool and timeout options to taste)."""
        return {
            "host": self.redis_host,
            "port": self.redis_port,
            "password": password.get_secret_value(),
        }

    def mongo_client_options(self, password: SecretStr) -> dict[str, Any]:
        """Keyword arguments for a PyMongo client of the documents database (no URL, so no
        percent-encoding pitfalls)."""
        mechanism = self.mongo_auth_mechanism
        return {
            "host": self.mongo_host,
            "port": self.mongo_port,
            "username": self.docs_db_user,
            "password": password.get_secret_value(),
            "authMechanism": mechanism,
            "authSource": self.mongo_auth_source
            or ("$external" if mechanism == "PLAIN" else "admin"),
            "tz_aware": True,
        }

    def service_url(self, name: str) -> str:
        """Base URL of a sibling service: users, documents, graph, timeseries or gateway."""
        host, port = getattr(self, f"{name}_host"), getattr(self, f"{name}_port")
        return f"http://{host}:{port}"


class StoreSettings(CampusSettings):
    """Every store's credentials, for what looks into the stores itself: the `campus` CLI,
    the tests and the bench (never a service: each service holds only its own secret)."""

    users_db_password: SecretStr
    ts_db_password: SecretStr
    neo4j_password: SecretStr
    redis_password: SecretStr

    def users_dsn(self) -> str:
        """libpq URL of the users database, as its service role."""
        return self.users_db(self.users_db_password).dsn()

    def ts_dsn(self) -> str:
        """libpq URL of the time-series database, as its service role."""
        return self.ts_db(self.ts_db_password).dsn()

    @property
    def neo4j_auth(self) -> tuple[str, str]:
        """(user, password) for the Neo4j driver."""
        return NEO4J_USER, self.neo4j_password.get_secret_value()

    def redis_client_options(self) -> dict[str, Any]:
        """`redis_options` with this process's password."""
        return self.redis_options(self.redis_password)
