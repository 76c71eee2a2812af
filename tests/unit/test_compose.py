"""docker-compose.yml against the native stack: names, ports, versions, and what each
container may see. (The stack itself runs in tests/compose, marker `compose`.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit

# native component -> compose service
NATIVE_TO_COMPOSE = {
    "postgres": "postgres",
    "redis": "redis",
    "kafka": "kafka",
    "connect": "connect",
    "neo4j": "neo4j",
    "ferretdb": "mongo",
    "users": "users",
    "documents": "documents",
    "graph": "graph",
    "timeseries": "timeseries",
    "gateway": "gateway",
    "zipkin": "zipkin",
}
# compose service -> its image variable and the images.txt image standing in for the official one
IMAGE_VARS = {
    "postgres": ("CAMPUS_IMAGE_POSTGRES", "postgres"),
    "timescaledb": ("CAMPUS_IMAGE_TIMESCALEDB", "postgres"),
    "redis": ("CAMPUS_IMAGE_REDIS", "redis"),
    "kafka": ("CAMPUS_IMAGE_KAFKA", "kafka"),
    "connect": ("CAMPUS_IMAGE_CONNECT", "connect"),
    "neo4j": ("CAMPUS_IMAGE_NEO4J", "neo4j"),
    "mongo": ("CAMPUS_IMAGE_MONGO", "ferretdb"),
}
# Secrets each container may receive; every other container gets none.
SECRETS = {
    "postgres": {"CAMPUS_PG_SUPERUSER_PASSWORD"},
    "timescaledb": {"CAMPUS_PG_SUPERUSER_PASSWORD"},
    "migrate": {
        "CAMPUS_PG_SUPERUSER_PASSWORD",
        "CAMPUS_USERS_DB_PASSWORD",
        "CAMPUS_TS_DB_PASSWORD",
        "CAMPUS_DOCS_DB_PASSWORD",
        "CAMPUS_DEBEZIUM_PASSWORD",
    },
    "redis": {"CAMPUS_REDIS_PASSWORD"},
    "connect": {"CAMPUS_DEBEZIUM_PASSWORD"},
    "neo4j": {"CAMPUS_NEO4J_PASSWORD"},
    "mongo": {"CAMPUS_DOCS_DB_PASSWORD"},
    "users": {"CAMPUS_USERS_DB_PASSWORD"},
    "documents": {"CAMPUS_DOCS_DB_PASSWORD"},
    "graph": {"CAMPUS_NEO4J_PASSWORD"},
    "timeseries": {"CAMPUS_TS_DB_PASSWORD"},
    "gateway": {"CAMPUS_REDIS_PASSWORD", "CAMPUS_JWT_SECRET", "CAMPUS_ADMIN_PASSWORD"},
    # The operator's CLI looks into every store (profile `tools`, never started by `up`).
    "campus": {
        "CAMPUS_REDIS_PASSWORD",
        "CAMPUS_JWT_SECRET",
        "CAMPUS_ADMIN_PASSWORD",
        "CAMPUS_USERS_DB_PASSWORD",
        "CAMPUS_TS_DB_PASSWORD",
        "CAMPUS_DOCS_DB_PASSWORD",
        "CAMPUS_NEO4J_PASSWORD",
    },
    "grafana": {"CAMPUS_GRAFANA_ADMIN_PASSWORD"},
}
SECRET = re.compile(r"\$\{(CAMPUS_[A-Z0-9_]*(?:PASSWORD|SECRET))\}")


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z0-9_]+=", line):
            name, value = line.split("=", 1)
            out[name] = value
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def native_components() -> list[str]:
    text = (ROOT / "stack" / "components.sh").read_text()
    return re.findall(r'^\s+"(\w+)\s+CAMPUS_', text, flags=re.M)


def test_every_native_component_has_a_compose_service(compose: dict[str, Any]) -> None:
    components = native_components()
    assert set(components) == set(NATIVE_TO_COMPOSE)
    for name in components:
        assert NATIVE_TO_COMPOSE[name] in compose["services"], name
    # The time-series store is TimescaleDB proper in containers (where it can be pulled).
    assert _official(compose, "timescaledb").startswith("timescale/timescaledb:")


def test_only_the_gateway_and_grafana_publish_and_only_on_campus_host(
    compose: dict[str, Any],
) -> None:
    env = env_example()
    published = {name: svc["ports"] for name, svc in compose["services"].items() if "ports" in svc}
    assert published == {
        "gateway": [
            f"${{CAMPUS_HOST:-127.0.0.1}}:${{CAMPUS_COMPOSE_GATEWAY_PORT:-"
            f"{env['CAMPUS_COMPOSE_GATEWAY_PORT']}}}:8000"
        ],
        "grafana": [
            f"${{CAMPUS_HOST:-127.0.0.1}}:${{CAMPUS_COMPOSE_GRAFANA_PORT:-"
            f"{env['CAMPUS_COMPOSE_GRAFANA_PORT']}}}:3000"
        ],
    }
    # Compose runs beside the native stack (CI does): its ports are none of the native ones.
    native = {v for k, v in env.items() if k.endswith("_PORT") and "COMPOSE" not in k}
    assert env["CAMPUS_COMPOSE_GATEWAY_PORT"] not in native
    assert env["CAMPUS_COMPOSE_GRAFANA_PORT"] not in native


def test_everything_else_is_on_the_internal_network_only(compose: dict[str, Any]) -> None:
    assert compose["networks"]["internal"] == {"internal": True}
    for name, svc in compose["services"].items():
        expected = ["internal", "public"] if name in ("gateway", "grafana") else ["internal"]
        assert svc["networks"] == expected, name


def test_each_container_gets_only_the_secrets_it_needs(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "env_file" not in text  # no file handing every secret to every container
    for name, svc in compose["services"].items():
        given = set(SECRET.findall(yaml.safe_dump(svc.get("environment") or {})))
        assert given == SECRETS.get(name, set()), name
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "${CAMPUS_GRAFANA_ADMIN_PASSWORD}"


def test_redis_password_never_reaches_the_command_line(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--requirepass" not in command and "| exec redis-server -" in command


def local_images() -> dict[str, str]:
    out = {}
    for line in (ROOT / "stack" / "docker" / "images.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, tag, *_ = line.split()
            out[name] = tag
    return out


def test_each_store_image_is_a_variable_defaulting_to_the_official_image(
    compose: dict[str, Any],
) -> None:
    local = local_images()
    for service, (var, stand_in) in IMAGE_VARS.items():
        image = compose["services"][service]["image"]
        match = re.fullmatch(rf"\$\{{{var}:-([^}}]+)\}}", image)
        assert match, (service, image)
        assert not match.group(1).startswith("campusconnect/"), "official image by default"
        assert stand_in in local
    assert compose["services"]["users"]["image"].endswith(f":-{local['services']}}}")


def _pom_property(pom: str, name: str) -> str:
    text = (ROOT / "stack" / pom / "pom.xml").read_text()
    found = re.search(rf"<{re.escape(name)}>([^<]+)</", text)
    assert found, name
    return found.group(1)


def _official(compose: dict[str, Any], service: str) -> str:
    image = compose["services"][service]["image"]
    return image.split(":-", 1)[1].rstrip("}")


def test_versions_match_the_native_stack(compose: dict[str, Any]) -> None:
    local = local_images()
    kafka = _pom_property("kafka", "kafka.version")
    debezium = _pom_property("kafka", "debezium.version")
    neo4j = _pom_property("neo4j", "neo4j.version")
    # Kafka and Debezium: exactly, in the official and in the local images.
    assert _official(compose, "kafka") == f"apache/kafka:{kafka}"
    assert local["kafka"].endswith(f":{kafka}")
    assert _official(compose, "connect") == f"quay.io/debezium/connect:{debezium}"
    assert local["connect"].endswith(f":{debezium}")
    # Neo4j: exactly too (5.26 LTS patch releases are published as images and as jars).
    assert _official(compose, "neo4j") == f"neo4j:{neo4j}-community"
    assert local["neo4j"].endswith(f":{neo4j}")
    # PostgreSQL: the major version (Debian 12 ships 15), for both servers.
    pg_major = re.search(
        r"postgresql-(\d+)", (ROOT / "stack" / "postgres" / "install.sh").read_text()
    )
    assert pg_major
    assert _official(compose, "postgres").split(":")[1].split(".")[0] == pg_major.group(1)
    assert _official(compose, "timescaledb").endswith(f"-pg{pg_major.group(1)}")
    assert local["postgres"].endswith(f":{pg_major.group(1)}")
    # Redis: the major version. Debian 12 has 7.0, the official image 7.4: both are Redis 7.
    assert _official(compose, "redis").split(":")[1].split(".")[0] == "7"
    assert local["redis"].split(":")[1].split(".")[0] == "7"
    # FerretDB stands in for MongoDB 7 (a different server: see README, "With Docker").
    assert _official(compose, "mongo").split(":")[1].split(".")[0] == "7"
    assert local["ferretdb"].endswith(":1.24.2")


def test_compose_only_names_variables_the_native_stack_defines(compose: dict[str, Any]) -> None:
    env = env_example()
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(CAMPUS_[A-Z0-9_]+)", text))
    assert used, "compose should take its settings from .env"
    # Besides .env's names: the image choice and FerretDB's auth mechanism, which
    # `make compose-up` sets for this machine (stack/docker/compose.sh).
    compose_only = {var for var, _ in IMAGE_VARS.values()} | {
        "CAMPUS_IMAGE_SERVICES",
        "CAMPUS_IMAGE_PROMETHEUS",
        "CAMPUS_IMAGE_GRAFANA",
        "CAMPUS_COMPOSE_MONGO_AUTH_MECHANISM",
        "CAMPUS_COMPOSE_OTEL_ENABLED",
        "CAMPUS_IMAGE_ZIPKIN",
    }
    assert used <= set(env) | compose_only, used - set(env) - compose_only


def test_services_listen_on_their_native_ports(compose: dict[str, Any]) -> None:
    env = env_example()
    for name in ("users", "documents", "graph", "timeseries", "gateway"):
        command = compose["services"][name]["command"]
        assert command[-1] == env[f"CAMPUS_{name.upper()}_PORT"], name
        assert f"campus_{name}.main:app" in command


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in (
                "service_healthy",
                "service_completed_successfully",
                "service_started",
            ), (
                name,
                dep,
            )
            target = compose["services"][dep]
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in target, dep


def test_observability_profile_scrapes_every_service(compose: dict[str, Any]) -> None:
    assert compose["services"]["prometheus"]["profiles"] == ["observability"]
    assert compose["services"]["zipkin"]["profiles"] == ["observability"]
    assert compose["services"]["grafana"]["profiles"] == ["observability"]
    scrape = yaml.safe_load((ROOT / "stack" / "observability" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    for name in ("gateway", "users", "documents", "graph", "timeseries"):
        port = compose["services"][name]["command"][-1]
        assert f"{name}:{port}" in targets
    board = ROOT / "stack" / "observability" / "grafana" / "dashboards" / "campusconnect.json"
    text = board.read_text()
    for metric in (
        "campus_projection_lag",
        "campus_projection_heartbeat_delay_seconds",
        "campus_http_request_seconds_bucket",
        "campus_replication_slot_retained_bytes",
    ):
        assert metric in text
