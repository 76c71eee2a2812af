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
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

from bench.core import ROOT, Report, supervised_pid
from bench.tools import WrkResult, wrk

T = TypeVar("T")

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
    "Neo4j driver": ("neo4j/",),
    "PostgreSQL (psycopg)": ("psycopg/", "psycopg_pool/"),
    "Kafka client (aiokafka)": ("aiokafka/",),
    "JSON/model decoding (pydantic, orjson)": ("pydantic", "model_validate", "orjson"),
}


def service_pid(service: str) -> int:
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
        "--subprocesses",  # a service run with several workers: their samples too
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


def _stacks(raw: str) -> Iterator[tuple[str, int]]:
    """(stack, samples) per line of py-spy's raw (collapsed) format."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield stack, int(count)


def shares(raw: str) -> dict[str, float]:
    """Inclusive share of samples per WATCH entry, from py-spy's raw (collapsed) stacks."""
    total = 0
    hits: Counter[str] = Counter()
    for stack, n in _stacks(raw):
        total += n
        for label, needles in WATCH.items():
            if any(needle in stack for needle in needles):
                hits[label] += n
    return {label: round(hits[label] / total, 3) if total else 0.0 for label in WATCH}


def hottest(raw: str, top: int = 3) -> list[tuple[str, float]]:
    """The frames with the largest self time (leaf of a stack), with their share of samples:
    where the process spends its cycles, the first place to look for a bottleneck."""
    leaves: Counter[str] = Counter()
    for stack, n in _stacks(raw):
        leaves[stack.rsplit(";", 1)[-1].strip()] += n
    total = sum(leaves.values())
    return [(frame, round(n / total, 3)) for frame, n in leaves.most_common(top)] if total else []


async def during(
    report: Report, *, name: str, pid: int, seconds: int, work: Awaitable[T]
) -> tuple[T, str]:
    """Sample process `pid` for `seconds` while `work` runs (it starts at once and may run
    longer); the SVG goes into the report's files as `flame_<name>.svg`. Returns what `work`
    returned and a line with the WATCH frames' shares and the hottest frames."""
    with tempfile.TemporaryDirectory(prefix="bench-spy-") as tmp:
        svg, raw = Path(tmp) / "flame.svg", Path(tmp) / "flame.raw"
        # Two recorders over the same work: py-spy writes one format per run.
        recorders = asyncio.gather(
            _record(pid, seconds, svg, "flamegraph"), _record(pid, seconds, raw, "raw")
        )
        result = await work
        await recorders
        report.files[f"flame_{name}.svg"] = svg.read_bytes()
        text = raw.read_text()
    found = ", ".join(f"{label} {share:.0%}" for label, share in shares(text).items() if share)
    hot = ", ".join(f"`{frame}` {share:.0%}" for frame, share in hottest(text))
    return result, f"share of samples: {found or 'none of the watched frames'}; hottest: {hot}"


async def flame_graph(
    report: Report, *, name: str, service: str, url: str, script: str, connections: int
) -> str:
    """Sample `service` while wrk loads `url` (see `during`)."""
    seconds = 8

    async def load() -> WrkResult:
        await asyncio.sleep(0.5)
        return await wrk(url, duration_s=seconds - 1, connections=connections, script=script)

    result, found = await during(
        report, name=name, pid=service_pid(service), seconds=seconds, work=load()
    )
    return (
        f"- `flame_{name}.svg`: {service}, {result.requests_per_s:.0f} req/s at {connections} "
        f"connections; {found}"
    )
