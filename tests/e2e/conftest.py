"""Fault-injection harness: a steady write load, the real processes, and a reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from campus_cli.reconcile import Drift, reconcile
from tests.conftest import StackSettings
from tests.helpers import unique_email

ROOT = Path(__file__).resolve().parents[2]


def sctl(*args: str) -> str:
    """supervisorctl on the native stack (stop/start/signal the real processes)."""
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return out.stdout


def wait_ready(component: str, timeout: float = 180) -> None:
    """Block until the component's own readiness check passes."""
    script = ROOT / "stack" / (component if component not in SERVICES else "services") / "ready.sh"
    deadline = time.monotonic() + timeout
    while subprocess.run([str(script), component], capture_output=True, check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError(f"{component} not ready after {timeout}s")
        time.sleep(0.5)


SERVICES = {"users", "documents", "graph", "timeseries", "gateway"}


class Load:
    """Users created, renamed, joined to groups and deleted through the users service, steadily."""

    def __init__(self, stack: StackSettings, rate: float = 20.0) -> None:
        self.base = stack.service_url("users")
        self.auth = stack.operator_auth()
        self.rate = rate
        self.ops = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        rng = random.Random()
        alive: list[int] = []
        async with httpx.AsyncClient(base_url=self.base, timeout=10, auth=self.auth) as http:
            group = (
                await http.post("/groups", json={"name": "fault-load", "course_code": "F-1"})
            ).json()
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    roll = rng.random()
                    if roll < 0.5 or len(alive) < 5:
                        r = await http.post(
                            "/users",
                            json={
                                "email": unique_email("fault"),
                                "full_name": "Fault Load",
                                "password": "fault-load-pw",
                            },
                        )
                        if r.status_code == 201:
                            alive.append(r.json()["id"])
                    elif roll < 0.75:
                        await http.put(
                            f"/users/{rng.choice(alive)}",
                            json={"full_name": f"Renamed {rng.random():.6f}"},
                        )
                    elif roll < 0.9:
                        await http.post(
                            f"/groups/{group['id']}/members", json={"user_id": rng.choice(alive)}
                        )
                    else:
                        await http.delete(f"/users/{alive.pop(rng.randrange(len(alive)))}")
                    self.ops += 1
                except httpx.HTTPError:
                    self.errors += 1  # PostgreSQL itself may be the thing restarted
                await asyncio.sleep(max(0.0, 1 / self.rate - (time.monotonic() - started)))


@pytest.fixture
async def admin_http(stack: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as http:
        r = await http.post(
            "/auth/token",
            data={
                "username": stack.admin_email,
                "password": stack.admin_password.get_secret_value(),
            },
        )
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield http


async def total_lags(stack: StackSettings, admin: httpx.AsyncClient) -> dict[str, int]:
    """Every projection's lag, from the services that run them."""
    out: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as http:
        for svc in ("graph", "timeseries"):
            with contextlib.suppress(httpx.HTTPError):
                for p in (await http.get(f"{stack.service_url(svc)}/projections")).json():
                    out[p["name"]] = p["total_lag"] if p["partitions"] else -1
    with contextlib.suppress(httpx.HTTPError):
        for p in (await admin.get("/projections")).json():
            out[p["name"]] = p["total_lag"] if p["partitions"] else -1
    return out


async def converged(
    stack: StackSettings, admin: httpx.AsyncClient, timeout: float = 120
) -> list[Drift]:
    """Wait for every lag to reach 0 and the stores to agree with PostgreSQL; return the drift."""
    deadline = time.monotonic() + timeout
    drifts: list[Drift] = []
    while time.monotonic() < deadline:
        lags = await total_lags(stack, admin)
        if set(lags) >= {"graph", "cache", "timeseries"} and all(v == 0 for v in lags.values()):
            drifts = await reconcile()
            if all(d.clean for d in drifts):
                return drifts
        await asyncio.sleep(1)
    raise AssertionError(
        f"stores did not converge in {timeout}s: lags {await total_lags(stack, admin)}, "
        f"drift {[(d.store, d.missing[:5], d.extra[:5], d.stale[:5]) for d in drifts]}"
    )
