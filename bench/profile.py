"""Flame graphs: where the gateway's cached read and the documents service's post creation
spend their time, sampled with py-spy (a dev dependency) under the same wrk load as M4.

The SVGs go beside the report (`flame_<what>.svg`); the report lists, per graph, the share of
samples in a few frames that matter for issue 16 (tracing, Redis, the route itself, the users
service call), counted from the same samples in py-spy's raw format.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

from bench.core import ROOT, Report, supervised_pid
from bench.tools import wrk

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
RATE_HZ = 100
# Frames whose inclusive share the report states (substring of py-spy's "function (file:line)").
# Only frames that do tracing work themselves: the ASGI middleware frame wraps the whole request
# (the route included), so its inclusive share would say nothing.
WATCH = {
    "tracing (spans: start, attributes, end, export)": (
        "Exporter",
        "BatchProcessor",
        "Tracer.start",
        "_start_internal_or_server_span",
        "_get_default_span_details",
        "otel_send",
        "Span.end",
        "Span.set_attribute",
    ),
    "Redis round trips": ("Pipeline.execute", "Script.__call__"),
    "users service call (httpx)": ("AsyncClient.send",),
    "FerretDB (pymongo)": ("pymongo/",),
    "the route's own code": ("campus_gateway/routes", "campus_documents/routes"),
}


def _pid(service: str) -> int:
    pid = supervised_pid(service)
    if pid is None:
        raise RuntimeError(f"{service} is not running under this stack's supervisord")
    return pid


def available() -> bool:
    return PY_SPY.exists()


async def _record(pid: int, seconds: int, out: Path, fmt: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(RATE_HZ),
        "--nonblocking",  # sampling must not pause the service it measures
        "--subprocesses",  # the gateway's uvicorn workers, when it runs several
        "--format",
        fmt,
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-300:]}")


def shares(raw: str) -> dict[str, float]:
    """Inclusive share of samples per WATCH entry, from py-spy's raw (collapsed) stacks."""
    total = 0
    hits: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        for label, needles in WATCH.items():
            if any(needle in stack for needle in needles):
                hits[label] += n
    return {label: round(hits[label] / total, 3) if total else 0.0 for label in WATCH}


async def flame_graph(
    report: Report, *, name: str, service: str, url: str, script: str, connections: int
) -> str:
    """Sample `service` while wrk loads `url`; the SVG goes into the report's files, and the
    line returned says what share of the samples the WATCH frames took."""
    pid, seconds = _pid(service), 8
    with tempfile.TemporaryDirectory(prefix="bench-spy-") as tmp:
        svg, raw = Path(tmp) / "flame.svg", Path(tmp) / "flame.raw"
        # Two recorders over the same load: py-spy writes one format per run.
        recorders = asyncio.gather(
            _record(pid, seconds, svg, "flamegraph"), _record(pid, seconds, raw, "raw")
        )
        await asyncio.sleep(0.5)
        load = await wrk(url, duration_s=seconds - 1, connections=connections, script=script)
        await recorders
        report.files[f"flame_{name}.svg"] = svg.read_bytes()
        found = shares(raw.read_text())
    cells = ", ".join(f"{label} {share:.0%}" for label, share in found.items() if share)
    return (
        f"- `flame_{name}.svg`: {service}, {load.requests_per_s:.0f} req/s at {connections} "
        f"connections; share of samples: {cells}"
    )
