"""The cluster topology (make up TOPOLOGY=cluster): its members, a write load, and the checks
every failover test ends with."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from campus_cli.reconcile import Drift, reconcile
from campus_common.internal_auth import OperatorAuth, Signer
from tests.conftest import StackSettings
from tests.e2e.conftest import SERVICES, Load, sctl

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("cluster")
TOPOLOGY_FILE = ROOT / ".stack" / "data" / "topology"
# The failover figures of the last run, for the README's table (written, never read by a test).
FIGURES = ROOT / ".stack" / "cluster-failover.json"
PROJECTION_SERVICES = ("gateway", "graph", "timeseries")


@pytest.fixture(scope="session", autouse=True)
def cluster_topology() -> None:
    """These tests kill members of the cluster topology; on a single node they mean nothing."""
    topology = TOPOLOGY_FILE.read_text().strip() if TOPOLOGY_FILE.exists() else "single"
    if topology != "cluster":
        pytest.skip("needs the cluster topology: make clean && make up TOPOLOGY=cluster")


def instance_port(stack: StackSettings, service: str, n: int) -> int:
    """The port of instance n (1, 2) of a service; HAProxy holds the service's own port."""
    return int(env_value(f"{service}_{n}_port"))


def instance_auth(stack: StackSettings) -> OperatorAuth:
    """The operator's signed tokens for every instance's own port as well as HAProxy's."""
    ports = stack.service_ports()
    for service in list(ports.values()):
        ports |= {instance_port(stack, service, n): service for n in (1, 2)}
    signer = Signer(issuer="operator", private_key=stack.operator_signing_key.get_secret_value())
    return OperatorAuth(signer, ports)


def env_value(name: str) -> str:
    """A cluster-only port from the environment or .env (StackSettings does not model them)."""
    if value := os.environ.get(f"CAMPUS_{name.upper()}"):
        return value
    for line in (ROOT / ".env").read_text().splitlines():
        if line.upper().startswith(f"CAMPUS_{name.upper()}="):
            return line.split("=", 1)[1]
    raise KeyError(name)


def wait_ready(member: str, timeout: float = 300) -> None:
    """Block until a cluster member (kafka-2, gateway-1, ...) passes its component's check."""
    base = member.rsplit("-", 1)[0]
    folder = "services" if base in SERVICES else base
    script = ROOT / "stack" / folder / "ready.sh"
    deadline = time.monotonic() + timeout
    while subprocess.run([str(script), member], capture_output=True, check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError(f"{member} not ready after {timeout}s")
        time.sleep(0.5)


def kill_9(component: str) -> int:
    """SIGKILL the component's process (supervisord restarts it: the exit was unexpected)."""
    pid = int(sctl("pid", component).strip())
    assert pid > 0, f"{component} is not running"
    log.info("kill -9 %s (pid %d)", component, pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def record(name: str, **figures: Any) -> None:
    """Keep a test's measured figures (seconds) for the README's failover table."""
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = figures
    log.info("figures %s: %s", name, figures)
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True))


@dataclass
class Timeline:
    """When writes stopped succeeding and flowed again after a fault (monotonic seconds)."""

    fault_at: float = 0.0
    ok_after: list[float] = field(default_factory=list)

    def writes_resumed_s(self) -> float | None:
        after = [t for t in self.ok_after if t > self.fault_at]
        return round(after[0] - self.fault_at, 2) if after else None


class WriteLoad(Load):
    """The fault harness's load (users created, renamed, joined, deleted through HAProxy),
    with the time of every acknowledged write, so a test can say when writes flowed again."""

    def __init__(self, stack: StackSettings, rate: float = 20.0) -> None:
        super().__init__(stack, rate)
        self.timeline = Timeline()
        self._last_ops = 0

    async def stop(self) -> None:
        """End the load (before waiting for the projections: a steady load keeps lag above 0)."""
        await self.__aexit__(None, None, None)

    async def watch(self) -> None:
        """Sample the acknowledged-write count; a rise after the fault marks writes flowing."""
        while True:
            if self.ops > self._last_ops:
                self.timeline.ok_after.append(time.monotonic())
                self._last_ops = self.ops
            await asyncio.sleep(0.05)


@pytest.fixture
async def write_load(stack: StackSettings) -> AsyncIterator[WriteLoad]:
    """The steady write load every failover test runs under (one fixture, so the mixed gateway
    load of campus_cli.load can replace it in one place)."""
    load = WriteLoad(stack, rate=10)
    async with load:
        watcher = asyncio.create_task(load.watch())
        try:
            yield load
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def instance_lags(stack: StackSettings, token: str) -> dict[str, int]:
    """Every projection instance's lag, asked of each instance directly (HAProxy would answer
    for one of the two only); -1 for an instance that does not answer."""
    out: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10, auth=instance_auth(stack)) as http:
        for svc in PROJECTION_SERVICES:
            for n in (1, 2):
                url = f"http://{stack.host}:{instance_port(stack, svc, n)}/projections"
                try:
                    admin = {"Authorization": f"Bearer {token}"} if svc == "gateway" else {}
                    rows = (await http.get(url, headers=admin)).json()
                    for p in rows:
                        out[f"{p['name']}-{n}"] = int(p["total_lag"])
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    out[f"{svc}-{n}"] = -1
    return out


@pytest.fixture
async def admin_token(stack: StackSettings) -> str:
    """An admin token for the gateways' /projections (passed along: pytest imports this
    conftest under two module names, so module state would not be shared)."""
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as http:
        r = await http.post(
            "/auth/token",
            data={
                "username": stack.admin_email,
                "password": stack.admin_password.get_secret_value(),
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


async def caught_up(stack: StackSettings, token: str, timeout: float = 420) -> float:
    """Wait until every projection instance answers with lag 0; the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        lags = await instance_lags(stack, token)
        log.info("lags %s", lags)
        if lags and all(v == 0 for v in lags.values()):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"projections still lag after {timeout}s: {await instance_lags(stack, token)}"
    )


async def reconciled(*, timeout: float = 180, repair_redis: bool = False) -> list[Drift]:
    """`campus reconcile` until clean (it is the check: PostgreSQL against every store). With
    repair_redis, one repair first: Redis replicates asynchronously, so a master killed before
    its replica had a write loses it by design; the repair drops those entries."""
    if repair_redis:
        await reconcile(repair=True)
    deadline = time.monotonic() + timeout
    drifts: list[Drift] = []
    while time.monotonic() < deadline:
        drifts = await reconcile()
        log.info(
            "drift %s", [(d.store, len(d.missing), len(d.extra), len(d.stale)) for d in drifts]
        )
        if all(d.clean for d in drifts):
            return drifts
        await asyncio.sleep(2)
    raise AssertionError(
        "stores disagree with PostgreSQL: "
        f"{[(d.store, d.missing[:5], d.extra[:5], d.stale[:5]) for d in drifts]}"
    )
