"""Zero trust between the parts: the internal services answer only signed callers, the caller's
identity is the token's, Kafka and Connect listen on loopback, Connect's REST API needs auth."""

from __future__ import annotations

import httpx
import pytest

from campus_common.internal_auth import Signer, generate_keypair
from tests.conftest import ROOT, StackSettings
from tests.e2e.security.security_helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(120)]

# One harmless read per internal service.
READS = {
    "users": "/users?limit=1",
    "documents": "/posts?limit=1",
    "graph": "/relationships?limit=1",
    "timeseries": "/analytics/dau?days=1",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def gateway_signer(stack: StackSettings) -> Signer:
    return Signer(issuer="gateway", private_key=stack.gateway_signing_key.get_secret_value())


@pytest.mark.parametrize("service", sorted(READS))
async def test_internal_services_answer_only_their_trusted_callers(
    stack: StackSettings, service: str
) -> None:
    url = stack.service_url(service) + READS[service]
    forged = Signer(issuer="gateway", private_key=generate_keypair()[0]).token(audience=service)
    other = "users" if service != "users" else "graph"
    misaddressed = gateway_signer(stack).token(audience=other)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"X-User-Id": "1"})).status_code == 401
        assert (await http.get(url, headers=bearer(forged))).status_code == 401
        assert (await http.get(url, headers=bearer(misaddressed))).status_code == 401
        ok = await http.get(url, headers=bearer(gateway_signer(stack).token(audience=service)))
        assert ok.status_code == 200, ok.text
        # Health stays open for the stack's readiness checks.
        assert (await http.get(stack.service_url(service) + "/health")).status_code in (200, 503)
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as operator:
        assert (await operator.get(url)).status_code == 200


async def test_the_identity_is_the_tokens_not_the_body_or_a_header(
    stack: StackSettings, user: Account, other: Account
) -> None:
    """A request the gateway signed for one user cannot post, edit or befriend as another."""
    signer = gateway_signer(stack)
    async with httpx.AsyncClient(timeout=10) as http:
        as_user = {"documents": signer.token(audience="documents", user_id=user.id)}
        spoof = await http.post(
            stack.service_url("documents") + "/posts",
            json={"title": "spoofed", "author_id": other.id},
            headers={**bearer(as_user["documents"]), "X-User-Id": str(other.id)},
        )
        assert spoof.status_code == 403, spoof.text
        reset = await http.put(
            f"{stack.service_url('users')}/users/{other.id}",
            json={"password": "taken over at last"},
            headers=bearer(signer.token(audience="users", user_id=user.id)),
        )
        assert reset.status_code == 403, reset.text
        friend = await http.post(
            f"{stack.service_url('graph')}/users/{other.id}/friends/{user.id}",
            headers=bearer(signer.token(audience="graph", user_id=user.id)),
        )
        assert friend.status_code == 403, friend.text


async def test_projection_controls_need_the_operator_or_the_admin(
    stack: StackSettings, user: Account
) -> None:
    url = f"{stack.service_url('graph')}/projections/graph/resume"
    signer = gateway_signer(stack)
    async with httpx.AsyncClient(timeout=10) as http:
        as_user = bearer(signer.token(audience="graph", user_id=user.id))
        assert (await http.post(url, headers=as_user)).status_code == 403
        as_admin = bearer(signer.token(audience="graph", user_id=1, admin=True))
        assert (await http.post(url, headers=as_admin)).status_code == 200
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as operator:
        assert (await operator.post(url)).status_code == 200


async def test_connect_rest_api_needs_basic_auth(stack: StackSettings) -> None:
    url = f"http://{stack.connect_host}:{stack.connect_port}/connectors"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url)).status_code == 401
        wrong = httpx.BasicAuth(stack.connect_user, "not-the-password")
        assert (await http.get(url, auth=wrong)).status_code == 401
        right = httpx.BasicAuth(stack.connect_user, stack.connect_password.get_secret_value())
        resp = await http.get(url, auth=right)
        assert resp.status_code == 200 and "campus-users" in resp.json()


def test_connect_resolves_only_the_debezium_variables() -> None:
    """A connector posted to Connect can read `${env:...}` only for what connectors/*.json use."""
    props = (ROOT / ".stack" / "run" / "connect-worker.properties").read_text()
    (line,) = [x for x in props.splitlines() if x.startswith("config.providers.env.param.allow")]
    assert line.endswith("=^CAMPUS_(HOST|PG_HOST|PG_PORT|DEBEZIUM_PASSWORD)$"), line


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net shows them) with a socket listening on `port`."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                local, state = row.split()[1], row.split()[3]
                addr, _, hexport = local.rpartition(":")
                if state == "0A" and int(hexport, 16) == port:
                    found.add(addr)
    return found


def test_kafka_and_connect_listen_on_loopback_only(stack: StackSettings) -> None:
    # 127.0.0.1, ::1 and ::ffff:127.0.0.1 (a JVM binds IPv4 addresses through IPv6 sockets)
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    for port in (stack.kafka_port, stack.kafka_controller_port, stack.connect_port):
        addresses = _listening(port)
        assert addresses and addresses <= loopback, (port, addresses)
