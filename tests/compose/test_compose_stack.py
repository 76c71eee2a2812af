"""The docker-compose stack passes the native stack's end-to-end checks: the API walkthroughs,
the consistency demo (pause, stale, resume, converge) and the reconcile; only the gateway is
reachable from the host, the rest through the gateway or `docker compose exec`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from typing import Any

import httpx
import pytest
from gateway_helpers import Account, login, register, token_subject
from test_gateway_walkthroughs import campusconnect_walkthrough, leaderboard_points
from test_gateway_walkthroughs import (
    test_polyglot_demo_walkthrough as polyglot_demo_walkthrough,
)

from tests.compose.conftest import ComposeSettings, compose

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]


def _inspect(*args: str) -> dict[str, Any]:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]  # type: ignore[no-any-return]


def test_only_the_gateway_is_published(compose_stack: ComposeSettings) -> None:
    ps = compose("ps", "-q")
    assert ps.returncode == 0, ps.stderr
    published, projects = {}, set()
    for cid in ps.stdout.split():
        info = _inspect("inspect", cid)
        labels = info["Config"]["Labels"]
        projects.add(labels["com.docker.compose.project"])
        ports = info["NetworkSettings"]["Ports"] or {}
        bindings = [b for bs in ports.values() if bs for b in bs]
        if bindings:
            published[labels["com.docker.compose.service"]] = bindings
    assert list(published) == ["gateway"], published
    assert published["gateway"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(compose_stack.compose_gateway_port)}
    ]
    # Everything else sits on a network with no route out.
    (project,) = projects
    assert _inspect("network", "inspect", f"{project}_internal")["Internal"] is True


def test_postgres_is_reached_with_exec_and_decodes_logically(
    compose_stack: ComposeSettings,
) -> None:
    out = compose("exec", "-T", "postgres", "psql", "-U", "postgres", "-tAc", "SHOW wal_level")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "logical"


async def test_the_campusconnect_walkthrough(http: httpx.AsyncClient, gw: str) -> None:
    await campusconnect_walkthrough(http, gw, leaderboard_points(http, gw))


async def test_the_polyglot_demo_walkthrough(
    http: httpx.AsyncClient, gw: str, compose_stack: ComposeSettings
) -> None:
    # The admin of this compose stack (its .env): cache status and the like are the admin's.
    email, password = compose_stack.admin_email, compose_stack.admin_password.get_secret_value()
    token = await login(http, gw, email, password)
    admin = Account(id=token_subject(token), email=email, token=token)
    await polyglot_demo_walkthrough(http, gw, await register(http, gw, name="Ada Student"), admin)


def test_the_consistency_demo_shows_stale_stores_that_converge(
    compose_stack: ComposeSettings,
) -> None:
    out = compose("cli", "demo", "consistency", timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    text = out.stdout
    # While paused, each store lags PostgreSQL (stale), and each converges after resume.
    assert re.search(r"graph store: None\s+→ not there yet", text), text
    # The gateway marks the entry it just changed stale (<S>) itself; only the projection
    # brings the new name.
    assert re.search(r"cache store: (Demo Student|<S>)\s+→ not there yet", text), text
    assert re.search(r"timeseries store: 0\s+→ not there yet", text), text
    assert len(re.findall(r"converged", text)) == 3, text


async def test_reconcile_finds_every_store_in_agreement(compose_stack: ComposeSettings) -> None:
    # The walkthroughs' last events may still be in flight: a clean verdict within a minute.
    for _ in range(12):
        out = await asyncio.to_thread(compose, "cli", "reconcile", timeout=300)
        if out.returncode == 0:
            break
        await asyncio.sleep(5)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "drift against the sources" in out.stdout
