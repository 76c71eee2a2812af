"""docker-compose.yml against the native stack: names, ports, versions, and what each
container may see. (The stack itself runs in tests/compose, marker `compose`.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from campus_common.internal_auth import ISSUERS, TRUSTED

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
# Containers with no native process of their own, and what each may receive. Every container
# that stands for a native component gets exactly stack/secrets.sh's list for it.
COMPOSE_ONLY_SECRETS = {
    "timescaledb": {"CAMPUS_PG_SUPERUSER_PASSWORD"},  # a second PostgreSQL server
    # One-shot jobs: the migration (natively run by stack/up.sh) and the connector registrar.
    "migrate": {
        "CAMPUS_PG_SUPERUSER_PASSWORD",
        "CAMPUS_USERS_DB_PASSWORD",
        "CAMPUS_TS_DB_PASSWORD",
        "CAMPUS_DOCS_DB_PASSWORD",
        "CAMPUS_DEBEZIUM_PASSWORD",
    },
    "connector-registrar": {"CAMPUS_CONNECT_PASSWORD"},
    "grafana": {"CAMPUS_GRAFANA_ADMIN_PASSWORD"},
}
# Where compose differs from the native component on purpose: MongoDB proper makes its root
# user from the documents service's password (FerretDB, natively, has no users of its own).
COMPOSE_EXTRA_SECRETS = {"mongo": {"CAMPUS_DOCS_DB_PASSWORD"}}
SECRET = re.compile(r"\$\{(CAMPUS_[A-Z0-9_]*_(?:PASSWORD|SECRET|SIGNING_KEY))\}")
VERIFY_KEY = re.compile(r"\$\{(CAMPUS_[A-Z0-9_]*_VERIFY_KEY)\}")


def native_secrets(component: str) -> set[str]:
    """stack/secrets.sh's list for one native component."""
    out = subprocess.run(
        ["bash", "-c", '. stack/secrets.sh && component_secrets "$1"', "-", component],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    return set(out.split())


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
    # The single-node topology's list: compose mirrors it, not the cluster topology's members.
    text = (ROOT / "stack" / "components.sh").read_text().split("# The cluster topology")[0]
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


def _given(svc: dict[str, Any], pattern: re.Pattern[str]) -> set[str]:
    return set(pattern.findall(yaml.safe_dump(svc.get("environment") or {})))


def expected_secrets() -> dict[str, set[str]]:
    """Per compose service: stack/secrets.sh's list for its native component, the compose-only
    containers', and the operator CLI's (the secrets its settings need, and the operator key)."""
    out = {svc: native_secrets(native) for native, svc in NATIVE_TO_COMPOSE.items()}
    for svc, extra in COMPOSE_EXTRA_SECRETS.items():
        out[svc] = out[svc] | extra
    out.update(COMPOSE_ONLY_SECRETS)
    out["campus"] = cli_secrets() | {"CAMPUS_OPERATOR_SIGNING_KEY"}
    return out


def _secret_fields(settings: type[BaseSettings]) -> set[str]:
    return {
        f"CAMPUS_{name.upper()}"
        for name, field in settings.model_fields.items()
        if field.annotation is SecretStr
    }


def cli_secrets() -> set[str]:
    """What the `campus` CLI's settings require."""
    from campus_cli.client import CliSettings
    from campus_cli.stores import StoreSettings

    return _secret_fields(CliSettings) | _secret_fields(StoreSettings)


def test_each_container_gets_only_the_secrets_it_needs(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "env_file" not in text  # no file handing every secret to every container
    expected = expected_secrets()
    for name, svc in compose["services"].items():
        assert _given(svc, SECRET) == expected.get(name, set()), name
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "${CAMPUS_GRAFANA_ADMIN_PASSWORD}"


def test_the_secret_lists_are_what_the_services_settings_require(compose: dict[str, Any]) -> None:
    # A service that starts without a secret its settings require fails at once; one that gets
    # more than its settings read holds a secret for nothing.
    from campus_documents.config import Settings as DocumentsSettings
    from campus_gateway.config import Settings as GatewaySettings
    from campus_graph.config import Settings as GraphSettings
    from campus_timeseries.config import Settings as TimeseriesSettings
    from campus_users.config import Settings as UsersSettings

    settings: dict[str, type[BaseSettings]] = {
        "users": UsersSettings,
        "documents": DocumentsSettings,
        "graph": GraphSettings,
        "timeseries": TimeseriesSettings,
        "gateway": GatewaySettings,
    }
    for name, cls in settings.items():
        assert _given(compose["services"][name], SECRET) == _secret_fields(cls), name


def test_each_service_gets_the_public_keys_of_exactly_the_callers_it_trusts(
    compose: dict[str, Any],
) -> None:
    for name, svc in compose["services"].items():
        trusted = TRUSTED.get(name, frozenset())
        expected = {f"CAMPUS_{issuer.upper()}_VERIFY_KEY" for issuer in trusted}
        assert _given(svc, VERIFY_KEY) == expected, name
    # Every issuer's signing key goes to its owner alone: the operator's to the CLI.
    owners = {"gateway": "gateway", "documents": "documents", "graph": "graph"}
    owners["operator"] = "campus"
    assert set(owners) == set(ISSUERS)
    for issuer, owner in owners.items():
        holders = [
            name
            for name, svc in compose["services"].items()
            if f"CAMPUS_{issuer.upper()}_SIGNING_KEY" in _given(svc, SECRET)
        ]
        assert holders == [owner], issuer


def test_connect_takes_basic_auth_and_only_its_connectors_variables(
    compose: dict[str, Any],
) -> None:
    env = compose["services"]["connect"]["environment"]
    run_sh = (ROOT / "stack" / "connect" / "run.sh").read_text()
    native = re.search(r"allowlist\.pattern=(\S+)", run_sh)
    assert native
    # The same allowlist as natively (`\$` in the heredoc, `$$` in compose).
    pattern = env["CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN"]
    assert pattern.replace("$$", "$") == native.group(1).replace("\\$", "$")
    assert env["CAMPUS_CONNECT_PASSWORD"] == "${CAMPUS_CONNECT_PASSWORD}"
    registrar = compose["services"]["connector-registrar"]["environment"]
    assert registrar["CAMPUS_CONNECT_USER"] == "${CAMPUS_CONNECT_USER}"
    # The healthcheck hands curl the credentials on stdin, never as an argument.
    check = " ".join(compose["services"]["connect"]["healthcheck"]["test"])
    assert "-K -" in check and " -u " not in check
    entrypoint = (ROOT / "stack" / "docker" / "connect-entrypoint.sh").read_text()
    assert "render_connect_auth" in entrypoint and "unset CAMPUS_CONNECT_PASSWORD" in entrypoint
    assert "BasicAuthSecurityRestExtension" in entrypoint
    pom = (ROOT / "stack" / "kafka" / "pom.xml").read_text()
    assert "<artifactId>connect-basic-auth-extension</artifactId>" in pom


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
    return str(image.split(":-", 1)[1].rstrip("}"))


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
        "campus_projection_lag_records",
        "campus_projection_lag_seconds",
        "campus_projection_heartbeat_delay_seconds",
        "campus_http_request_seconds_bucket",
        "campus_replication_slot_retained_bytes",
    ):
        assert metric in text
