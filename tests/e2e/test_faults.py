"""Faults under a steady write load; each ends with zero missing and zero duplicated rows."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from tests.conftest import StackSettings
from tests.e2e.conftest import ROOT, Load, converged, sctl, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


@pytest.mark.parametrize("service", ["graph", "gateway", "timeseries"])
async def test_kill_9_a_projection_mid_batch(
    stack: StackSettings, admin_http: httpx.AsyncClient, service: str
) -> None:
    async with Load(stack, rate=40) as load:
        await asyncio.sleep(3)
        out = await asyncio.to_thread(sctl, "signal", "KILL", service)
        assert "signalled" in out, out
        # supervisord restarts it (the exit was unexpected); the load goes on meanwhile.
        await asyncio.sleep(2)
        await asyncio.to_thread(wait_ready, service)
        await asyncio.sleep(3)
    assert load.ops > 20  # writes went on through the fault (argon2 bounds the rate)
    await converged(stack, admin_http)


async def test_restart_kafka_then_connect_then_postgres(
    stack: StackSettings, admin_http: httpx.AsyncClient
) -> None:
    async with Load(stack, rate=20) as load:
        for component in ("kafka", "connect", "postgres"):
            await asyncio.sleep(3)
            await asyncio.to_thread(sctl, "restart", component)
            await asyncio.to_thread(wait_ready, component)
        await asyncio.sleep(5)
    assert load.ops > 20
    # Debezium resumes from its slot: nothing committed while it was away is lost.
    await converged(stack, admin_http, timeout=180)


@pytest.mark.parametrize("component", ["neo4j", "redis", "ferretdb"])
async def test_a_store_down_for_30s_during_load(
    stack: StackSettings, admin_http: httpx.AsyncClient, component: str
) -> None:
    async with Load(stack, rate=20) as load:
        await asyncio.sleep(2)
        await asyncio.to_thread(sctl, "stop", component)
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.to_thread(sctl, "start", component)
        await asyncio.to_thread(wait_ready, component)
        await asyncio.sleep(3)
    assert load.ops > 50
    await converged(stack, admin_http, timeout=180)


async def test_two_instances_of_a_projection_split_partitions_and_survive_a_rebalance(
    stack: StackSettings, admin_http: httpx.AsyncClient
) -> None:
    # A second timeseries service in the same consumer group, on a free port.
    with socket.socket() as probe:
        probe.bind((stack.host, 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CAMPUS_ENVIRONMENT": "development"}
    log_path = ROOT / ".stack" / "logs" / "timeseries-second.log"
    log = log_path.open("wb")
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "campus_timeseries.main:app",
            "--host",
            stack.host,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        async with Load(stack, rate=40):
            auth = stack.operator_auth()
            auth.ports[port] = "timeseries"  # the second instance is a timeseries service too
            async with httpx.AsyncClient(timeout=5, auth=auth) as http:
                for _ in range(120):
                    await asyncio.sleep(1)
                    try:
                        mine = (await http.get(f"http://{stack.host}:{port}/projections")).json()[0]
                    except (httpx.HTTPError, ValueError, IndexError):
                        continue
                    if mine["partitions"]:
                        break
                else:
                    tail = log_path.read_text()[-2000:]
                    raise AssertionError(f"the second instance never got partitions:\n{tail}")
                theirs = (await http.get(f"{stack.service_url('timeseries')}/projections")).json()[
                    0
                ]
                split = {(p["topic"], p["partition"]) for p in mine["partitions"]}
                other = {(p["topic"], p["partition"]) for p in theirs["partitions"]}
                assert split and other and not split & other, "partitions are split, never shared"
            await asyncio.sleep(3)
            second.send_signal(signal.SIGKILL)  # a rebalance mid-load, the hard way
            second.wait(timeout=10)
            await asyncio.sleep(5)
    finally:
        if second.poll() is None:
            second.kill()
        log.close()
    await converged(stack, admin_http, timeout=180)
