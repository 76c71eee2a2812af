"""The cluster topology (make up TOPOLOGY=cluster): its members, the mixed gateway write load
(campus_cli.load.MixedLoad, the one the fault harness runs), and the checks every failover test
ends with: every projection instance caught up, the full reconcile at 0 in every category and
every acknowledged write of the load found in every store that projects it."""

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

from campus_cli.faults import SERVICES, pid_of
from campus_cli.load import MixedLoad, verify
from campus_cli.reconcile import (
    CATEGORIES,
    Drift,
    check_redis,
    read_log,
    read_source,
    reconcile,
    total,
)
from campus_cli.stores import StoreSettings
from campus_common.internal_auth import OperatorAuth, Signer
from tests.conftest import StackSettings

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
    pid = pid_of(component)
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


class WriteLoad(MixedLoad):
    """The fault harness's mixed write load (renames, accounts, joins, posts, comments, likes,
    friendships, follows) through HAProxy's gateway, with the time every write started after
    the fault was acknowledged, so a test can say when writes flowed again."""

    def __init__(self, stack: StackSettings, rate: float = 10.0) -> None:
        super().__init__(stack.service_url("gateway"), rate=rate)
        self.timeline = Timeline()
        self._stopped = False

    def acked_since(self, at: float) -> int:
        """Writes started at or after `at` (time.monotonic()) and acknowledged."""
        return sum(1 for a in self.attempts if a.ok and a.at >= at)

    async def stop(self) -> None:
        """End the load (before waiting for the projections: a steady load keeps lag above 0)."""
        if not self._stopped:
            self._stopped = True
            await self.__aexit__(None, None, None)

    async def watch(self) -> None:
        """Sample the writes acknowledged since the fault; a rise marks writes flowing again."""
        seen = 0
        while True:
            if self.timeline.fault_at:
                n = self.acked_since(self.timeline.fault_at)
                if n > seen:
                    self.timeline.ok_after.append(time.monotonic())
                    seen = n
            await asyncio.sleep(0.05)


@pytest.fixture
async def write_load(stack: StackSettings) -> AsyncIterator[WriteLoad]:
    """The mixed write load every failover test runs under, flowing before the test starts."""
    load = WriteLoad(stack)
    await load.__aenter__()
    watcher = asyncio.create_task(load.watch())
    try:
        await load.wait_for_acks(10)
        yield load
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await load.stop()


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


async def repair_redis() -> Drift:
    """The reconcile's repair of Redis alone (the other stores are checked, never repaired)."""
    s = StoreSettings()
    return await check_redis(s, await read_source(s), await read_log(s), repair=True)


async def reconciled(*, timeout: float = 240) -> list[Drift]:
    """`campus reconcile` until clean (it is the check: every derived store against its sources
    and the log); fails with the drift of every category when it never is."""
    deadline = time.monotonic() + timeout
    drifts: list[Drift] = []
    while time.monotonic() < deadline:
        drifts = await reconcile()
        log.info("drift %s", {d.store: {c: len(getattr(d, c)) for c in CATEGORIES} for d in drifts})
        if all(d.clean for d in drifts):
            break
        await asyncio.sleep(2)
    assert total(drifts) == dict.fromkeys(CATEGORIES, 0), (
        f"stores disagree with their sources after {timeout}s: {total(drifts)} "
        f"{[d.as_json() for d in drifts if not d.clean]}"
    )
    return drifts


async def settled(
    stack: StackSettings, token: str, load: WriteLoad, *, repair_redis_first: bool = False
) -> float:
    """How every failover test ends: the load stopped, every projection instance at lag 0, the
    full reconcile at 0 in every category, and no acknowledged write of the load missing from a
    store (`verify`). With repair_redis_first, Redis is repaired once before the check: Redis
    replicates asynchronously, so a master killed before its replica had a write loses it by
    design (the profile entries, leaderboard points, hot-post scores and activity entries the
    cache projection wrote there last); the repair restores them from the sources. Returns the
    seconds the projections took to catch up."""
    await load.stop()
    lag_s = await caught_up(stack, token)
    if repair_redis_first:
        repaired = await repair_redis()
        log.info("redis repaired: %d entries (%s)", repaired.repaired, repaired.as_json())
    await reconciled()
    problems = await verify(load)
    assert problems == [], problems[:20]
    assert len(load.acked) > 20, f"only {len(load.acked)} writes acknowledged"
    return lag_s
