"""docker-compose.yml cannot run here (no Docker engine): check it against the native stack."""

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
# compose service -> the .env.example variable holding its published port
PORT_VARS = {
    "postgres": "CAMPUS_PG_PORT",
    "redis": "CAMPUS_REDIS_PORT",
    "kafka": "CAMPUS_KAFKA_PORT",
    "connect": "CAMPUS_CONNECT_PORT",
    "mongo": "CAMPUS_MONGO_PORT",
    "users": "CAMPUS_USERS_PORT",
    "documents": "CAMPUS_DOCUMENTS_PORT",
    "graph": "CAMPUS_GRAPH_PORT",
    "timeseries": "CAMPUS_TIMESERIES_PORT",
    "gateway": "CAMPUS_GATEWAY_PORT",
    "zipkin": "CAMPUS_ZIPKIN_PORT",
}


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
    # The time-series store is TimescaleDB proper in containers.
    assert compose["services"]["timescaledb"]["image"].startswith("timescale/timescaledb")


def test_published_ports_use_the_same_variables_and_defaults(compose: dict[str, Any]) -> None:
    env = env_example()
    for service, var in PORT_VARS.items():
        ports = compose["services"][service]["ports"]
        assert any(p.startswith(f"${{{var}:-{env[var]}}}:") for p in ports), (service, ports)


def test_compose_only_names_variables_the_native_stack_defines(compose: dict[str, Any]) -> None:
    env = env_example()
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(CAMPUS_[A-Z0-9_]+)", text))
    assert used, "compose should take its settings from .env"
    assert used <= set(env), used - set(env)


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
