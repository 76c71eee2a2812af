"""The Helm chart (deploy/helm/campusconnect), rendered and checked offline: no cluster here.

`helm lint` and `helm template` (Helm built from the Go module proxy by stack/helm/install.sh),
every rendered object validated against the Kubernetes OpenAPI schemas that `kubernetes-validate`
ships (strict: unknown fields fail) for the oldest and newest minors the chart supports, and the
chart's environment names, ports, secrets and network policies checked against the services'
own settings and call graph, as test_compose.py does for docker-compose.yml.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi import HTTPException
from pydantic import SecretStr, create_model
from pydantic_settings import BaseSettings

from campus_common.internal_auth import ISSUERS, TRUSTED, Signer, Verifier, generate_keypair
from campus_documents.config import Settings as DocumentsSettings
from campus_gateway.config import Settings as GatewaySettings
from campus_graph.config import Settings as GraphSettings
from campus_timeseries.config import Settings as TimeseriesSettings
from campus_users.config import Settings as UsersSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "campusconnect"
PRODUCTION = CHART / "values-production.yaml"
# The first build of Helm (when `make up` has not built it yet) took 14 minutes on two cores
# shared with other stacks; afterwards the fixture is a no-op and each helm call is bounded at 60 s.
pytestmark = [pytest.mark.unit, pytest.mark.helm, pytest.mark.timeout(1800)]

# The oldest and newest Kubernetes minors the chart supports (Chart.yaml kubeVersion).
OLDEST, NEWEST = "1.29.0", "1.37.0"
SERVICES = ("users", "documents", "graph", "timeseries", "gateway")
SETTINGS: dict[str, type[BaseSettings]] = {
    "users": UsersSettings,
    "documents": DocumentsSettings,
    "graph": GraphSettings,
    "timeseries": TimeseriesSettings,
    "gateway": GatewaySettings,
}
# Who calls whom over HTTP; test_the_call_graph_is_the_codes checks it against the sources.
CALLS = {
    "users": set(),
    "documents": {"users"},
    "graph": {"users"},
    "timeseries": set(),
    "gateway": {"users", "documents", "graph", "timeseries"},
}
# The engine ports each program may reach (defaults of values.yaml), besides DNS and services.
ENGINE_PORTS = {
    "users": {5432},
    "documents": {27017, 9092},
    "graph": {7687, 9092},
    "timeseries": {5432, 9092},
    "gateway": {6379, 9092, 8083},
    "migrate": {5432},
    "connectors": {8083},
}
PROJECTION_OF = {"graph": "graph", "timeseries": "timeseries", "gateway": "cache"}
# The tracing variables the chart sets when tracing.enabled (off: CAMPUS_OTEL_ENABLED only).
TRACING_ENV = {
    "CAMPUS_OTEL_ENABLED": "enabled",
    "CAMPUS_OTEL_SAMPLE_RATIO": "sampleRatio",
    "CAMPUS_ZIPKIN_HOST": "collector.host",
    "CAMPUS_ZIPKIN_PORT": "collector.port",
    "CAMPUS_ZIPKIN_PUBLIC_URL": "publicUrl",
}


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z0-9_]+=", line):
            name, value = line.split("=", 1)
            out[name] = value
    return out


@pytest.fixture(scope="module")
def helm(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    subprocess.run([str(ROOT / "stack" / "helm" / "install.sh")], check=True, timeout=1750)
    binary = ROOT / ".stack" / "bin" / "helm"
    home = tmp_path_factory.mktemp("helm-home")
    # Helm's own state in a scratch directory, and no kubeconfig: nothing here may reach a cluster
    # or a chart repository (the chart has no dependencies to fetch).
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(binary), *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    by_kind: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj in self.objects:
            self.by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj

    def kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.by_kind.get(kind, {})

    def component(self, kind: str, component: str) -> dict[str, Any]:
        found = [
            o
            for o in self.kind(kind).values()
            if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        assert len(found) == 1, (kind, component, [o["metadata"]["name"] for o in found])
        return found[0]


Render = Callable[..., Rendered]


@pytest.fixture(scope="module")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    def run(*args: str, kube: str = NEWEST) -> Rendered:
        out = helm(
            "template", "campus", str(CHART), "--namespace", "campus", "--kube-version", kube, *args
        ).stdout
        return Rendered([d for d in yaml.safe_load_all(out) if d])

    return run


@pytest.fixture(scope="module")
def default(render: Render) -> Rendered:
    return render()


@pytest.fixture(scope="module")
def production(render: Render) -> Rendered:
    return render("-f", str(PRODUCTION))


@pytest.fixture(scope="module")
def untraced(render: Render) -> Rendered:
    return render("--set", "tracing.enabled=false")


def values_of(fixture: str) -> dict[str, Any]:
    """The values a fixture was rendered with: values.yaml, then (one level deep, which is all
    these files need) its own file, or its --set."""
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    if fixture == "production":
        for key, value in yaml.safe_load(PRODUCTION.read_text()).items():
            values[key] = {**values[key], **value} if isinstance(value, dict) else value
    elif fixture == "untraced":
        values["tracing"]["enabled"] = False
    return values


def pod_specs(r: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, obj in r.kind(kind).items():
            yield name, obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env names in {container['name']}"
    return {e["name"]: e for e in container.get("env", [])}


# --- Helm itself --------------------------------------------------------------------------------


def test_helm_is_the_pinned_version(helm: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    pinned = re.search(r"^HELM_VERSION=(\S+)", (ROOT / "stack/helm/install.sh").read_text(), re.M)
    assert pinned
    assert helm("version", "--template", "{{.Version}}").stdout.strip() == pinned.group(1)


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["default", "production"])
@pytest.mark.parametrize("kube", [OLDEST, NEWEST])
def test_helm_lint_strict(
    helm: Callable[..., subprocess.CompletedProcess[str]], values: Path | None, kube: str
) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube]
    if values:
        args += ["-f", str(values)]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out, out


def test_chart_refuses_clusters_older_than_it_supports(
    helm: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    proc = helm("template", "campus", str(CHART), "--kube-version", "1.28.0", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "incompatible" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "setting",
    [
        "engines.mongo.flavour=mongodb",
        "services.gateway.replicas=3",
        "engines.mongo.flavor=mongo",
        "tracing.sampleRatio=1.5",
        "tracing.collector.hostname=zipkin",
    ],
)
def test_values_schema_rejects_typos(
    helm: Callable[..., subprocess.CompletedProcess[str]], setting: str
) -> None:
    # values.schema.json: a misspelt key or a wrong choice fails the render, not the cluster.
    proc = helm("template", "campus", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr, proc.stderr


# --- every object against the Kubernetes schemas ----------------------------------------------


def _pairs() -> dict[str, str]:
    out = {}
    for issuer in ISSUERS:
        private, public = generate_keypair()
        out[f"CAMPUS_{issuer.upper()}_SIGNING_KEY"] = private
        out[f"CAMPUS_{issuer.upper()}_VERIFY_KEY"] = public
    return out


ALTERNATE_KEYS = _pairs()
# Long enough for the gateway's check on the JWT secret (32 bytes), as the services are started
# from this render's environment too (test_rendered_keys_sign_and_verify_with_the_projects_code).
ALTERNATE_VALUES = {
    key: ALTERNATE_KEYS.get(key, f"test-{key.lower()}-{'0' * 32}")
    for key in yaml.safe_load((CHART / "values.yaml").read_text())["secrets"]["keys"]
}
# The other branches of the templates: everything optional switched the other way.
ALTERNATE = [
    "--set",
    ",".join(
        [
            "networkPolicy.enabled=false",
            "services.gateway.autoscaling.enabled=false",
            "serviceAccount.create=false",
            "jobs.migrate.enabled=false",
            "jobs.connectors.enabled=false",
            "defaults.podDisruptionBudget.minAvailable=1",
            "image.digest=sha256:" + "0" * 64,
            "engines.timescaledb.host=",
            "engines.mongo.flavor=ferretdb",
            "ingress.enabled=true",
            "services.gateway.service.type=LoadBalancer",
            "secrets.generate=false",
            "tracing.enabled=false",
        ]
    ),
    # No generation: every key then needs a value (fake ones, for this render only; the keys
    # real Ed25519 pairs, which the chart checks).
    "--set-string",
    ",".join(f"secrets.values.{key}={value}" for key, value in ALTERNATE_VALUES.items()),
]
VALUE_SETS = {"default": [], "production": ["-f", str(PRODUCTION)], "alternate": ALTERNATE}


@pytest.mark.parametrize("values", list(VALUE_SETS))
@pytest.mark.parametrize("kube", [OLDEST, NEWEST])
def test_every_object_is_valid_for_kubernetes(render: Render, values: str, kube: str) -> None:
    rendered = render(*VALUE_SETS[values], kube=kube)
    kinds = {o["kind"] for o in rendered.objects}
    expected = {"Deployment", "Service", "PodDisruptionBudget"}
    if values == "alternate":
        expected |= {"Ingress", "Secret"}
        assert not kinds & {"NetworkPolicy", "HorizontalPodAutoscaler", "Job", "ServiceAccount"}
    else:
        expected |= {"HorizontalPodAutoscaler", "NetworkPolicy", "Job", "ServiceAccount"}
    assert expected <= kinds, expected - kinds
    for obj in rendered.objects:
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} invalid for {kube}: {exc}"
            ) from exc


def test_schema_validation_catches_a_bad_object(default: Rendered) -> None:
    # The validator is not a rubber stamp: a typo in a field name fails under strict schemas.
    bad = json.loads(json.dumps(default.component("Deployment", "users")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, NEWEST, strict=True)


def test_alternate_branches_render_as_meant(render: Render) -> None:
    r = render(*ALTERNATE)
    gateway = r.component("Deployment", "gateway")
    assert gateway["spec"]["replicas"] == 1  # no HPA: the chart sets the count
    (c,) = gateway["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "campusconnect@sha256:" + "0" * 64
    assert r.component("Service", "gateway")["spec"]["type"] == "LoadBalancer"
    (ts,) = r.component("Deployment", "timeseries")["spec"]["template"]["spec"]["containers"]
    env = env_of(ts)
    # No TimescaleDB host: campus_ts lives on the users' server, as natively.
    assert env["CAMPUS_TS_PG_HOST"]["value"] == env["CAMPUS_PG_HOST"]["value"]
    assert env["CAMPUS_TS_PG_PORT"]["value"] == env["CAMPUS_PG_PORT"]["value"]
    (secret,) = r.kind("Secret").values()
    assert (
        base64.b64decode(secret["data"]["CAMPUS_JWT_SECRET"]).decode()
        == (ALTERNATE_VALUES["CAMPUS_JWT_SECRET"])
    )
    # Given pairs are kept as given (the verify keys given too, and equal to the derived ones).
    for key, value in ALTERNATE_KEYS.items():
        assert base64.b64decode(secret["data"][key]).decode() == value, key
    assert all(p["spec"]["minAvailable"] == 1 for p in r.kind("PodDisruptionBudget").values())


def test_a_missing_secret_without_generation_fails(
    helm: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    proc = helm("template", "campus", str(CHART), "--set", "secrets.generate=false", check=False)
    assert proc.returncode != 0
    assert "has no value" in proc.stderr, proc.stderr


# --- parity with the services' settings -------------------------------------------------------


@pytest.mark.parametrize("fixture", ["default", "production", "untraced"])
def test_env_names_are_the_services_settings(request: pytest.FixtureRequest, fixture: str) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    for obj in rendered.kind("Deployment").values():
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        app = container["name"]
        fields = SETTINGS[app].model_fields
        env = env_of(container)
        known = {f"CAMPUS_{name.upper()}" for name in fields}
        assert set(env) <= known, (obj["metadata"]["name"], set(env) - known)
        required = {f"CAMPUS_{n.upper()}" for n, f in fields.items() if f.is_required()}
        assert required <= set(env), (obj["metadata"]["name"], required - set(env))
        # A right name with a value the service refuses (a ratio of 1.5, a port "zipkin") would
        # only fail at start-up in the cluster: each plain value must pass its field's checks.
        for var, e in env.items():
            if "value" in e:
                name = var[len("CAMPUS_") :].lower()
                definition: Any = (fields[name].annotation, fields[name])  # type, then checks
                create_model("One", **{name: definition}).model_validate({name: e["value"]})


def _at(values: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        values = values[key]
    return values


def _ratio_as_number(env: dict[str, str]) -> dict[str, Any]:
    # Helm writes the float 1.0 as "1"; the service reads either as 1.0.
    return {k: float(v) if k == "CAMPUS_OTEL_SAMPLE_RATIO" else v for k, v in env.items()}


@pytest.mark.parametrize("fixture", ["default", "production", "untraced"])
def test_tracing_env_follows_the_values(request: pytest.FixtureRequest, fixture: str) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    tracing = values_of(fixture)["tracing"]
    if tracing["enabled"]:
        expected = {var: str(_at(tracing, path)) for var, path in TRACING_ENV.items()}
        expected["CAMPUS_OTEL_ENABLED"] = "true"
    else:
        expected = {"CAMPUS_OTEL_ENABLED": "false"}
    for var in TRACING_ENV:
        # Every tracing variable is a setting of every service (the shared CampusSettings).
        assert all(var[len("CAMPUS_") :].lower() in s.model_fields for s in SETTINGS.values()), var
    for obj in rendered.kind("Deployment").values():
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        env = env_of(c)
        got = {var: env[var]["value"] for var in TRACING_ENV if var in env}
        # Off must be said: the services' own default is on, exporting to CAMPUS_HOST.
        assert _ratio_as_number(got) == _ratio_as_number(expected), obj["metadata"]["name"]
    for obj in rendered.kind("Job").values():
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        assert not set(env_of(c)) & set(TRACING_ENV), obj["metadata"]["name"]


def test_ports_match_the_settings_and_env_example(default: Rendered) -> None:
    env = env_example()
    for name in SERVICES:
        port = SETTINGS[name].model_fields[f"{name}_port"].default
        assert str(port) == env[f"CAMPUS_{name.upper()}_PORT"]
        dep = default.component("Deployment", name)
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["command"][:2] == ["uvicorn", f"campus_{name}.main:app"]
        assert container["command"][container["command"].index("--port") + 1] == str(port)
        svc = default.component("Service", name)
        assert svc["spec"]["ports"][0]["port"] == port
        # Every container learns this service's address as its Service name and port.
        for other in default.kind("Deployment").values():
            (c,) = other["spec"]["template"]["spec"]["containers"]
            e = env_of(c)
            assert e[f"CAMPUS_{name.upper()}_HOST"]["value"] == svc["metadata"]["name"]
            assert e[f"CAMPUS_{name.upper()}_PORT"]["value"] == str(port)


def test_engine_ports_default_to_the_native_ones(default: Rendered) -> None:
    env = env_example()
    (c,) = default.component("Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    e = env_of(c)
    for var in (
        "CAMPUS_PG_PORT",
        "CAMPUS_REDIS_PORT",
        "CAMPUS_KAFKA_PORT",
        "CAMPUS_CONNECT_PORT",
        "CAMPUS_NEO4J_BOLT_PORT",
        "CAMPUS_MONGO_PORT",
    ):
        assert e[var]["value"] == env[var], var
    # In a pod the services listen on every interface; the NetworkPolicies do the fencing.
    assert e["CAMPUS_HOST"]["value"] == "0.0.0.0"  # noqa: S104


def test_probes_hit_endpoints_the_apps_serve(default: Rendered) -> None:
    import importlib

    for name in SERVICES:
        app = importlib.import_module(f"campus_{name}.main").app
        paths = {getattr(r, "path", None) for r in app.routes}
        (c,) = default.component("Deployment", name)["spec"]["template"]["spec"]["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["path"] in paths, (name, probe)
            assert c[probe]["httpGet"]["port"] == "http"
        if name != "gateway":
            assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/health/live", name


def test_jobs_set_every_variable_their_scripts_read(default: Rendered) -> None:
    scripts = {
        "migrate": ["stack/postgres/init.sh", "stack/postgres/common.sh"],
        # auth.sh: the REST API's basic auth (connect_curl), sourced by init.sh.
        "connectors": ["stack/connect/init.sh", "stack/connect/auth.sh"],
    }
    for component, files in scripts.items():
        job = default.component("Job", component)
        (c,) = job["spec"]["template"]["spec"]["containers"]
        env = env_of(c)
        text = "\n".join((ROOT / f).read_text() for f in files)
        # $CAMPUS_X or ${CAMPUS_X} without a default: the script fails (set -u) if it is unset.
        used = set(re.findall(r"\$\{?(CAMPUS_[A-Z0-9_]+)(?![A-Z0-9_]*:-)", text))
        used -= {"CAMPUS_ROOT"}  # set by stack/lib.sh itself
        assert used, component
        assert used <= set(env), (component, used - set(env))
        # stack/lib.sh must take the variables from the environment, not generate a .env.
        assert env["CAMPUS_ENV_FILE"]["value"] == "none"


# --- credentials --------------------------------------------------------------------------------


def secret_keys() -> dict[str, list[str]]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return values["secrets"]["keys"]  # type: ignore[no-any-return]


KEY_PLACEHOLDERS = ("__generate__", "__ed25519__", "__ed25519_public__")
# A raw Ed25519 key as internal_auth.py reads it: 32 bytes, unpadded base64url.
RAW_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


def test_secret_keys_are_the_credentials_of_env_example() -> None:
    # Every value stack/lib.sh generates (passwords, and each Ed25519 pair, both halves).
    generated = {k for k, v in env_example().items() if v in KEY_PLACEHOLDERS}
    # Grafana runs only in docker-compose (profile observability); the chart deploys none.
    generated -= {"CAMPUS_GRAFANA_ADMIN_PASSWORD"}
    assert set(secret_keys()) == generated
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secrets"]["values"] == {}, "no credential in values by default"
    assert not values["secrets"]["existingSecret"]


def test_default_render_generates_every_secret_key(default: Rendered) -> None:
    (secret,) = default.kind("Secret").values()
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(secret["data"]) == set(secret_keys())
    for key, value in secret["data"].items():
        plain = base64.b64decode(value).decode()
        if key.endswith(("_SIGNING_KEY", "_VERIFY_KEY")):
            assert RAW_KEY.fullmatch(plain), key
        else:
            assert re.fullmatch(r"[A-Za-z0-9]{48}", plain), key


def test_each_workload_gets_only_its_own_credentials(production: Rendered) -> None:
    assert not production.kind("Secret"), "existingSecret: the chart makes none"
    keys = secret_keys()
    for kind in ("Deployment", "Job"):
        for obj in production.kind(kind).values():
            (c,) = obj["spec"]["template"]["spec"]["containers"]
            workload = c["name"]
            refs = {
                name: e["valueFrom"]["secretKeyRef"]
                for name, e in env_of(c).items()
                if "valueFrom" in e
            }
            assert set(refs) == {k for k, who in keys.items() if workload in who}, workload
            for name, ref in refs.items():
                assert ref == {"name": "campusconnect-credentials", "key": name}
            for name, e in env_of(c).items():
                if re.search(r"PASSWORD|SECRET|TOKEN", name):
                    assert "value" not in e, f"{workload}: {name} inline"


def _native_secrets(component: str) -> set[str]:
    """The secrets stack/secrets.sh gives one supervised component."""
    out = subprocess.run(
        ["bash", "-c", f". {ROOT}/stack/secrets.sh && component_secrets {component}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return set(out.split())


def _is_secret_name(name: str) -> bool:
    # stack/secrets.sh is_secret_name: what counts as a secret for its least-privilege table.
    return re.search(r"_(PASSWORD|SECRET|SIGNING_KEY)$", name) is not None


def _secret_refs(container: dict[str, Any]) -> set[str]:
    return {name for name, e in env_of(container).items() if "valueFrom" in e}


@pytest.mark.parametrize("fixture", ["default", "production"])
def test_secret_allocation_is_the_native_stacks(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    # Each service (and its separate projection) holds exactly the secrets stack/secrets.sh gives
    # it natively, and the public verify keys of exactly the callers it trusts (TRUSTED); the
    # gateway, which verifies no service tokens, none.
    rendered: Rendered = request.getfixturevalue(fixture)
    for obj in rendered.kind("Deployment").values():
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        app, refs = c["name"], _secret_refs(c)
        name = obj["metadata"]["name"]
        assert {r for r in refs if _is_secret_name(r)} == _native_secrets(app), name
        verify = {f"CAMPUS_{caller.upper()}_VERIFY_KEY" for caller in TRUSTED.get(app, ())}
        assert {r for r in refs if not _is_secret_name(r)} == verify, name
    # The hook Jobs: no service keys at all; Connect's password for the connector registration
    # only, as natively for the registrar; the migration holds the database passwords only.
    connectors = rendered.component("Job", "connectors")
    (c,) = connectors["spec"]["template"]["spec"]["containers"]
    assert _secret_refs(c) == {"CAMPUS_CONNECT_PASSWORD"}
    (m,) = rendered.component("Job", "migrate")["spec"]["template"]["spec"]["containers"]
    assert all(r.endswith("_PASSWORD") and "CONNECT" not in r for r in _secret_refs(m))
    # Nobody in the cluster signs as the operator: that key is the CLI's.
    for _, spec in pod_specs(rendered):
        assert "CAMPUS_OPERATOR_SIGNING_KEY" not in env_of(spec["containers"][0])
    # Every key referenced is one the Secret holds (the chart-made one here).
    for secret in rendered.kind("Secret").values():
        for _, spec in pod_specs(rendered):
            assert _secret_refs(spec["containers"][0]) <= set(secret["data"])


def test_connect_basic_auth_reaches_the_gateway_and_the_connectors_job(render: Render) -> None:
    r = render("--set", "engines.connect.user=registrar")
    for component in ("gateway", "connectors"):
        kind = "Job" if component == "connectors" else "Deployment"
        (c,) = r.component(kind, component)["spec"]["template"]["spec"]["containers"]
        env = env_of(c)
        assert env["CAMPUS_CONNECT_USER"]["value"] == "registrar", component
        assert "valueFrom" in env["CAMPUS_CONNECT_PASSWORD"], component


def _resolved_env(r: Rendered, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet would set it from the chart-made Secret."""
    (secret,) = r.kind("Secret").values()
    out = {}
    for name, e in env_of(container).items():
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], name
            out[name] = base64.b64decode(secret["data"][ref["key"]]).decode()
        else:
            out[name] = e["value"]
    return out


def _settings_of(r: Rendered, app: str, monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    (c,) = r.component("Deployment", app)["spec"]["template"]["spec"]["containers"]
    with monkeypatch.context() as m:
        for name in [n for n in os.environ if n.startswith("CAMPUS_")]:
            m.delenv(name)
        for name, value in _resolved_env(r, c).items():
            m.setenv(name, value)
        return SETTINGS[app](_env_file=None)


@pytest.mark.parametrize("values", ["default", "alternate"])
def test_rendered_keys_sign_and_verify_with_the_projects_code(
    render: Render, monkeypatch: pytest.MonkeyPatch, values: str
) -> None:
    # The whole path, as the pods would run it: each service's own Settings built from its
    # rendered environment (secretKeyRefs resolved from the rendered Secret), each caller's
    # Signer from its signing key, each service's Verifier from its verify keys.
    r = render(*VALUE_SETS[values]) if values != "default" else render()
    settings = {app: _settings_of(r, app, monkeypatch) for app in SERVICES}
    (secret,) = r.kind("Secret").values()
    operator_key = base64.b64decode(secret["data"]["CAMPUS_OPERATOR_SIGNING_KEY"]).decode()
    signers = {"operator": Signer(issuer="operator", private_key=operator_key)}
    for issuer in ("gateway", "documents", "graph"):
        key: SecretStr = getattr(settings[issuer], f"{issuer}_signing_key")
        signers[issuer] = Signer(issuer=issuer, private_key=key.get_secret_value())
    assert set(signers) == set(ISSUERS)
    for audience, trusted in TRUSTED.items():
        verifier = settings[audience].verifier(audience)  # type: ignore[attr-defined]
        for issuer, signer in signers.items():
            token = signer.token(audience=audience, user_id=7)
            if issuer in trusted:
                caller = verifier.verify(token)
                assert (caller.issuer, caller.user_id) == (issuer, 7), (issuer, audience)
            else:
                with pytest.raises(HTTPException) as refused:
                    verifier.verify(token)
                assert refused.value.status_code == 401, (issuer, audience)


def test_given_signing_keys_get_their_derived_verify_keys(render: Render) -> None:
    # Only signing keys given: the chart derives each public key, equal to the project's own.
    r = render(
        "--set-string",
        ",".join(
            f"secrets.values.{k}={v}"
            for k, v in ALTERNATE_KEYS.items()
            if k.endswith("_SIGNING_KEY")
        ),
    )
    (secret,) = r.kind("Secret").values()
    for key, value in ALTERNATE_KEYS.items():
        assert base64.b64decode(secret["data"][key]).decode() == value, key


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("secrets.values.CAMPUS_GRAPH_SIGNING_KEY=not-a-key", "raw Ed25519 key"),
        (
            "secrets.values.CAMPUS_GRAPH_VERIFY_KEY=" + ALTERNATE_KEYS["CAMPUS_GATEWAY_VERIFY_KEY"],
            "is not the public key of CAMPUS_GRAPH_SIGNING_KEY",
        ),
    ],
)
def test_bad_keys_fail_the_render(
    helm: Callable[..., subprocess.CompletedProcess[str]], setting: str, message: str
) -> None:
    proc = helm("template", "campus", str(CHART), "--set-string", setting, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_the_operator_may_keep_its_private_key_off_the_cluster(
    helm: Callable[..., subprocess.CompletedProcess[str]], render: Render
) -> None:
    # Without the signing key in secrets.keys, the public key must be given: it cannot be made.
    drop = ["--set", "secrets.keys.CAMPUS_OPERATOR_SIGNING_KEY=null"]
    proc = helm("template", "campus", str(CHART), *drop, check=False)
    assert proc.returncode != 0
    assert "CAMPUS_OPERATOR_VERIFY_KEY has no value" in proc.stderr, proc.stderr
    public = ALTERNATE_KEYS["CAMPUS_OPERATOR_VERIFY_KEY"]
    r = render(*drop, "--set-string", f"secrets.values.CAMPUS_OPERATOR_VERIFY_KEY={public}")
    (secret,) = r.kind("Secret").values()
    assert "CAMPUS_OPERATOR_SIGNING_KEY" not in secret["data"]
    assert base64.b64decode(secret["data"]["CAMPUS_OPERATOR_VERIFY_KEY"]).decode() == public


def test_credentials_script_makes_the_existing_secret(render: Render) -> None:
    # deploy/helm/credentials.sh, for secrets.existingSecret: every key, and pairs that work.
    out = subprocess.run(
        [str(CHART.parent / "credentials.sh"), "campusconnect-credentials"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    secret = yaml.safe_load(out)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "campusconnect-credentials"
    kubernetes_validate.validate(secret, NEWEST, strict=True)
    data: dict[str, str] = secret["stringData"]
    assert set(data) == set(secret_keys())
    for issuer in ISSUERS:
        private = data[f"CAMPUS_{issuer.upper()}_SIGNING_KEY"]
        public = data[f"CAMPUS_{issuer.upper()}_VERIFY_KEY"]
        assert RAW_KEY.fullmatch(private) and RAW_KEY.fullmatch(public), issuer
        audience = next(a for a, trusted in TRUSTED.items() if issuer in trusted)
        token = Signer(issuer=issuer, private_key=private).token(audience=audience)
        verifier = Verifier(audience=audience, public_keys={issuer: public})
        assert verifier.verify(token).issuer == issuer
    for key, value in data.items():
        if not key.endswith(("_SIGNING_KEY", "_VERIFY_KEY")):
            assert re.fullmatch(r"[A-Za-z0-9]{48}", value), key
    # --keys-only: just the pairs, as a patch for a Secret made before they existed.
    patch = subprocess.run(
        [str(CHART.parent / "credentials.sh"), "--keys-only"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pairs = yaml.safe_load(patch)
    assert set(pairs) == {"stringData"}
    assert set(pairs["stringData"]) == {k for k in secret_keys() if k.endswith("_KEY")}
    # Two derivations agree: openssl's public keys (the script) and sprig's (the chart).
    signing = {k: v for k, v in data.items() if k.endswith("_SIGNING_KEY")}
    r = render("--set-string", ",".join(f"secrets.values.{k}={v}" for k, v in signing.items()))
    (made,) = r.kind("Secret").values()
    for key, value in data.items():
        if key.endswith("_VERIFY_KEY"):
            assert base64.b64decode(made["data"][key]).decode() == value, key


def test_a_new_secret_key_reaches_exactly_the_workloads_named(render: Render) -> None:
    r = render("--set", "secrets.keys.CAMPUS_SERVICE_TOKEN={users,gateway}")
    (secret,) = r.kind("Secret").values()
    assert "CAMPUS_SERVICE_TOKEN" in secret["data"]
    for obj in r.kind("Deployment").values():
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        assert ("CAMPUS_SERVICE_TOKEN" in env_of(c)) == (c["name"] in ("users", "gateway"))


def test_extra_env_reaches_every_service(render: Render) -> None:
    r = render(
        "--set",
        "extraEnv.CAMPUS_SOME_SETTING=0.1",
        "--set",
        "services.graph.extraEnv.CAMPUS_SOME_SETTING=1",
    )
    for obj in r.kind("Deployment").values():
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        want = "1" if c["name"] == "graph" else "0.1"
        assert env_of(c)["CAMPUS_SOME_SETTING"]["value"] == want


# --- projections apart from request-serving replicas ------------------------------------------


def test_projections_run_inside_the_services_by_default(default: Rendered) -> None:
    assert {
        o["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in default.kind("Deployment").values()
    } == set(SERVICES)
    for app, projection in PROJECTION_OF.items():
        (c,) = default.component("Deployment", app)["spec"]["template"]["spec"]["containers"]
        assert env_of(c)[f"CAMPUS_{projection.upper()}_PROJECTION_ENABLED"]["value"] == "true"


def test_separate_projections_scale_on_their_own(production: Rendered) -> None:
    for app, projection in PROJECTION_OF.items():
        var = f"CAMPUS_{projection.upper()}_PROJECTION_ENABLED"
        assert var[len("CAMPUS_") :].lower() in SETTINGS[app].model_fields, var
        serving = production.component("Deployment", app)
        (c,) = serving["spec"]["template"]["spec"]["containers"]
        assert env_of(c)[var]["value"] == "false"
        worker = production.component("Deployment", f"{projection}-projection")
        (w,) = worker["spec"]["template"]["spec"]["containers"]
        assert env_of(w)[var]["value"] == "true"
        assert w["command"] == c["command"]
        assert worker["spec"]["replicas"] == 3
        # No Service: a projection takes no requests.
        assert not [
            s
            for s in production.kind("Service").values()
            if s["spec"]["selector"]["app.kubernetes.io/component"] == f"{projection}-projection"
        ]


def test_documents_scales_out_with_ferretdb(render: Render) -> None:
    # FerretDB v1 updates are not atomic; the service's leases span replicas (locks.py).
    r = render(
        "--set", "engines.mongo.flavor=ferretdb", "--set", "services.documents.replicaCount=2"
    )
    documents = r.component("Deployment", "documents")
    (c,) = documents["spec"]["template"]["spec"]["containers"]
    assert env_of(c)["CAMPUS_MONGO_AUTH_MECHANISM"]["value"] == "PLAIN"
    assert documents["spec"]["replicas"] == 2
    assert documents["spec"]["strategy"]["type"] == "RollingUpdate"


# --- pods: security, resources, disruption, scaling, labels ------------------------------------


@pytest.mark.parametrize("fixture", ["default", "production"])
def test_pods_are_non_root_and_bounded(request: pytest.FixtureRequest, fixture: str) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    for name, spec in pod_specs(rendered):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name


@pytest.mark.parametrize("fixture", ["default", "production"])
def test_every_deployment_has_a_disruption_budget(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    budgets = [
        p["spec"]["selector"]["matchLabels"] for p in rendered.kind("PodDisruptionBudget").values()
    ]
    for dep in rendered.kind("Deployment").values():
        assert dep["spec"]["selector"]["matchLabels"] in budgets, dep["metadata"]["name"]


def test_gateway_autoscales_and_owns_no_fixed_replica_count(production: Rendered) -> None:
    (hpa,) = production.kind("HorizontalPodAutoscaler").values()
    gateway = production.component("Deployment", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": gateway["metadata"]["name"],
    }
    assert "replicas" not in gateway["spec"]
    assert hpa["spec"]["minReplicas"] == 3


@pytest.mark.parametrize("fixture", ["default", "production"])
def test_recommended_labels_everywhere(request: pytest.FixtureRequest, fixture: str) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert labels.get(key), (obj["kind"], obj["metadata"]["name"], key)


# --- hook Jobs ---------------------------------------------------------------------------------


def test_migrations_run_before_and_connectors_after(default: Rendered) -> None:
    migrate = default.component("Job", "migrate")
    connectors = default.component("Job", "connectors")
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert connectors["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    (m,) = migrate["spec"]["template"]["spec"]["containers"]
    assert m["command"] == ["bash", "stack/postgres/init.sh"]
    (c,) = connectors["spec"]["template"]["spec"]["containers"]
    assert 'exec bash stack/connect/init.sh "$CONNECTORS_OUT"' in c["command"][2]
    for job in (migrate, connectors):
        # A hook pod may not name the chart's ServiceAccount: pre-install, it does not exist yet.
        assert "serviceAccountName" not in job["spec"]["template"]["spec"]
        mounts = {
            v["mountPath"] for v in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert "/app/.stack" in mounts  # stack/lib.sh writes there; the image is read-only


def test_connector_job_rewrites_the_database_address_only(
    production: Rendered, tmp_path: Path
) -> None:
    # Run the Job's whole command as the image would (its WORKDIR holds the repository), in a
    # sandbox whose stack/connect/init.sh only records what it was handed.
    (c,) = production.component("Job", "connectors")["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["bash", "-c"]
    sandbox = tmp_path / "app"
    (sandbox / "stack" / "connect").mkdir(parents=True)
    (sandbox / "connectors").mkdir()
    original_file = ROOT / "connectors" / "campus-users.json"
    (sandbox / "connectors" / original_file.name).write_text(original_file.read_text())
    (sandbox / "stack" / "connect" / "init.sh").write_text(
        'echo "$1 $CAMPUS_CONNECT_INIT_TIMEOUT" > "$CONNECTORS_OUT.called"\n'
    )
    env = {name: e["value"] for name, e in env_of(c).items() if "value" in e}
    assert env["CONNECTORS_OUT"] == "/tmp/connectors"  # an emptyDir in the pod
    out_dir = tmp_path / "out"
    env |= {"PATH": os.environ["PATH"], "CONNECTORS_OUT": str(out_dir)}
    subprocess.run(c["command"], cwd=sandbox, env=env, check=True, timeout=30)
    assert Path(f"{out_dir}.called").read_text().split() == [str(out_dir), "300"]
    out = json.loads((out_dir / "campus-users.json").read_text())
    original = json.loads(original_file.read_text())
    assert out["database.hostname"] == "campus-pg-rw.databases.svc.cluster.local"
    assert out["database.port"] == "5432"
    assert out["topic.creation.default.replication.factor"] == "3"
    # The password stays a reference the Connect worker resolves from its own environment.
    assert out["database.password"] == original["database.password"]
    assert original["database.password"] == "${env:CAMPUS_DEBEZIUM_PASSWORD}"
    changed = {k for k in original if original[k] != out[k]}
    assert changed == {
        "database.hostname",
        "database.port",
        "topic.creation.default.replication.factor",
    }


# --- network policies --------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the chart uses matchLabels only
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _port_ok(rule: dict[str, Any], port: int) -> bool:
    return any(p["port"] == port for p in rule.get("ports", []))


def _peer_ok(peers: list[dict[str, Any]] | None, labels: dict[str, str] | None) -> bool:
    """A pod of this release (labels) or an outside address (None) matches one of the peers."""
    if peers is None:
        return True  # no `from`/`to`: any peer
    for peer in peers:
        if (
            labels is not None
            and set(peer) == {"podSelector"}
            and _selects(peer["podSelector"], labels)
        ):
            return True
    return False


def _allowed(
    r: Rendered, src: dict[str, str] | None, dst: dict[str, str] | None, port: int
) -> bool:
    """Whether src may open a TCP connection to dst:port (None: outside this release)."""
    policies = list(r.kind("NetworkPolicy").values())
    if src is not None:
        egress = [p for p in policies if _selects(p["spec"]["podSelector"], src)]
        assert egress, f"no policy selects {src}"
        if not any(
            _port_ok(rule, port) and _peer_ok(rule.get("to"), dst)
            for p in egress
            for rule in p["spec"].get("egress", [])
        ):
            return False
    if dst is not None:
        ingress = [p for p in policies if _selects(p["spec"]["podSelector"], dst)]
        assert ingress, f"no policy selects {dst}"
        return any(
            _port_ok(rule, port) and _peer_ok(rule.get("from"), src)
            for p in ingress
            for rule in p["spec"].get("ingress", [])
        )
    return True


def _workload_labels(r: Rendered) -> dict[str, tuple[str, dict[str, str]]]:
    """component -> (program, pod labels) for every Deployment and Job."""
    out = {}
    for kind in ("Deployment", "Job"):
        for obj in r.kind(kind).values():
            labels = obj["spec"]["template"]["metadata"]["labels"]
            program = obj["spec"]["template"]["spec"]["containers"][0]["name"]
            out[labels["app.kubernetes.io/component"]] = (program, labels)
    return out


def test_the_call_graph_is_the_codes() -> None:
    # CALLS drives the network policy checks: it must be what the services really call.
    from campus_gateway.config import SERVICES as GATEWAY_UPSTREAMS

    for name in SERVICES:
        source = "\n".join(
            f.read_text() for f in (ROOT / "services" / name / f"campus_{name}").rglob("*.py")
        )
        called = set(re.findall(r"service_url\(\"(\w+)\"\)", source))
        if name == "gateway":
            assert "service_url(name)" in source  # one client per name in SERVICES
            called |= set(GATEWAY_UPSTREAMS)
        assert called == CALLS[name], name


@pytest.mark.parametrize("fixture", ["default", "production"])
def test_network_policies_allow_exactly_the_call_graph(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    r: Rendered = request.getfixturevalue(fixture)
    workloads = _workload_labels(r)
    ports = {name: r.component("Service", name)["spec"]["ports"][0]["port"] for name in SERVICES}
    for target in SERVICES:
        _, dst = workloads[target]
        for component, (program, src) in workloads.items():
            if component == target:
                continue
            expect = target in CALLS.get(program, set())
            assert _allowed(r, src, dst, ports[target]) == expect, (component, "->", target)
        # From outside the release: the gateway only.
        outside = _allowed(r, None, dst, ports[target])
        if fixture == "default":
            assert outside == (target == "gateway"), target
        else:  # production: only from the Ingress controller's namespace, never from a bare pod
            assert not outside, target
    # Separate projections take no connections at all.
    for component, (_program, labels) in workloads.items():
        if component.endswith("-projection") or component in ("migrate", "connectors"):
            for port in {*ports.values(), 8000}:
                assert not _allowed(r, None, labels, port), component


@pytest.mark.parametrize("fixture", ["default", "untraced"])
def test_network_policies_reach_only_each_programs_engines(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    r: Rendered = request.getfixturevalue(fixture)
    collector = values_of(fixture)["tracing"]["collector"]["port"]
    traced = fixture != "untraced"
    service_ports = {p["spec"]["ports"][0]["port"] for p in r.kind("Service").values()}
    for component, (program, labels) in _workload_labels(r).items():
        policy = next(
            p
            for p in r.kind("NetworkPolicy").values()
            if _selects(p["spec"]["podSelector"], labels)
        )
        reached = {
            port["port"]
            for rule in policy["spec"]["egress"]
            for port in rule["ports"]
            if port["port"] != 53 and port["port"] not in service_ports
        }
        # The services and their projections send spans; the hook Jobs (shell scripts) do not.
        sends_spans = traced and program in SERVICES
        assert reached == ENGINE_PORTS[program] | ({collector} if sends_spans else set()), component


@pytest.mark.parametrize("fixture", ["default", "production", "untraced"])
def test_network_policies_reach_the_collector_at_its_peers(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    r: Rendered = request.getfixturevalue(fixture)
    tracing = values_of(fixture)["tracing"]
    port, peers = tracing["collector"]["port"], tracing["collector"].get("networkPolicyPeers")
    for component, (program, labels) in _workload_labels(r).items():
        (policy,) = (
            p
            for p in r.kind("NetworkPolicy").values()
            if _selects(p["spec"]["podSelector"], labels)
        )
        rules = [rule for rule in policy["spec"]["egress"] if _port_ok(rule, port)]
        if tracing["enabled"] and program in SERVICES:
            # Exactly the peers from values, or (none given) that port to any address.
            assert [rule.get("to") for rule in rules] == [peers or None], component
        else:
            assert rules == [], component


@pytest.mark.parametrize("env_file", ["none", ""])
def test_stack_lib_keeps_a_jobs_environment(tmp_path: Path, env_file: str) -> None:
    # The hook Jobs run stack/*.sh in the image with CAMPUS_ENV_FILE=none and no JWT secret: the
    # scripts must use the environment as given, not generate a .env that overrides it.
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "lib.sh").write_text((ROOT / "stack" / "lib.sh").read_text())
    (tmp_path / ".env.example").write_text((ROOT / ".env.example").read_text())
    env = {"PATH": os.environ["PATH"], "CAMPUS_HOST": "0.0.0.0", "CAMPUS_ENV_FILE": env_file}  # noqa: S104
    out = subprocess.run(
        ["bash", "-c", f". {tmp_path}/stack/lib.sh && echo $CAMPUS_HOST"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()[-1]
    if env_file == "none":
        assert out == "0.0.0.0" and not (tmp_path / ".env").exists()  # noqa: S104
    else:  # natively: .env is generated from .env.example and wins
        assert out == "127.0.0.1" and (tmp_path / ".env").exists()
