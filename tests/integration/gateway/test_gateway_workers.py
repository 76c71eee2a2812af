"""The gateway under several uvicorn workers (CAMPUS_GATEWAY_WORKERS, stack/services/run.sh):
whichever worker answers /metrics, it counts the requests every worker served."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from gateway_helpers import Account
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, StackSettings
from tests.helpers import eventually

ROUTE = "/health/live"
LABELS = {"service": "gateway", "method": "GET", "route": ROUTE, "status": "200"}
MULTIPROC_DIR = ROOT / ".stack" / "run" / "prometheus-gateway"
BURST = 64


def _worker_pids() -> list[int]:
    """The gateway's uvicorn workers: multiprocessing's spawn children of the supervised pid."""
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), "pid", "gateway"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not out.isdigit() or out == "0":
        return []
    children = Path(f"/proc/{out}/task/{out}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _served_by(pid: int) -> float:
    """GET /health/live answered 200 by one worker, from that worker's own metrics file."""
    path = MULTIPROC_DIR / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
        _, name, labels, _ = json.loads(key)
        if name == "campus_http_requests_total" and labels == LABELS:
            return float(value)
    return 0.0


async def _scraped(http: httpx.AsyncClient, gw: str) -> float:
    text = (await http.get(f"{gw}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "campus_http_requests_total" and sample.labels == LABELS:
                return sample.value
    return 0.0


async def test_metrics_count_the_requests_of_every_worker(gw: str) -> None:
    workers = _worker_pids()
    if len(workers) < 2:
        pytest.skip("the gateway runs one process here (CAMPUS_GATEWAY_WORKERS=1, or a cluster)")
    # A fresh connection per request: the kernel hands each to whichever worker accepts first.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        before = await _scraped(http, gw)
        per_worker_before = {pid: _served_by(pid) for pid in workers}
        sent = 0
        for _ in range(20):  # until every worker has served some of them
            replies = await asyncio.gather(*(http.get(f"{gw}{ROUTE}") for _ in range(BURST)))
            assert all(r.status_code == 200 for r in replies)
            sent += BURST
            served = {pid: _served_by(pid) - per_worker_before[pid] for pid in workers}
            if all(served.values()):
                break
        after = await _scraped(http, gw)

    assert all(served.values()), f"some worker served none of {sent} requests: {served}"
    assert sum(served.values()) == sent
    # /metrics, answered by one worker, sums every worker's count.
    assert after - before == sent


async def _cache_group(stack: StackSettings) -> tuple[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups(["campus-cache"])
    finally:
        await admin.close()
    [group] = described.to_object()["groups"]
    return group["state"], len(group["members"])


async def test_a_rebuild_steps_the_other_workers_aside_and_brings_them_back(
    http: httpx.AsyncClient, gw: str, admin: Account, stack: StackSettings
) -> None:
    """Kafka refuses the rewind while another member holds partitions: every other worker
    leaves the group for the rebuild (campus_gateway.rebuild) and joins again after it."""
    workers = _worker_pids()
    if len(workers) < 2:
        pytest.skip("the gateway runs one process here (CAMPUS_GATEWAY_WORKERS=1, or a cluster)")
    await eventually(lambda: _cache_group(stack), until=lambda g: g == ("Stable", len(workers)))

    rebuilt = await http.post(
        f"{gw}/admin/consumers/cache/rebuild", headers=admin.auth, timeout=120
    )
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["state"] == "running"

    # Every worker is a member again (each started a fresh runner once the rebuild was over).
    await eventually(
        lambda: _cache_group(stack), until=lambda g: g == ("Stable", len(workers)), timeout=60
    )
