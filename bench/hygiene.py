"""Issue 16, bench hygiene: what the run left behind (runs after every other module).

A bench writes through the product, so its changes and events are on Kafka for good (a log is
not rewritten); every store derived from that log must still agree with it when the run ends.
Checked here with the reconcile the operator runs (`campus reconcile`, read-only), once the
projections are idle, and by listing the Kafka topics a run creates and must delete.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator

from bench import fixtures
from bench.core import Figure, Report
from campus_cli import reconcile

# Topics a run creates: backlogs and dead letters of its own runners (bench/consumer.py, sinks).
BENCH_TOPIC_PREFIXES = ("bench.", "campus.dlq.bench-")
IDLE_S = 900
# `campus reconcile` holds the whole log in memory (README, Known limits): on a stack with
# ~2.4 million events rows it grew this process to 19.6 GB and the kernel's OOM killer ended
# the run. Under this cap its reads fail with MemoryError and it stops (2026-12-02 15:37: "topic
# read stalled" after 2 minutes) without taking the machine's memory from the stack.
RECONCILE_LIMIT_BYTES = 6 * 1024**3


@contextlib.contextmanager
def _address_space(limit: int) -> Iterator[None]:
    """This process's address space capped at `limit` for the block (the hard limit kept)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


async def run(report: Report, *, quick: bool) -> None:
    async with fixtures.http_client() as http:
        token = await fixtures.admin_token(http)
        idle = await fixtures.wait_idle(
            http, token, ["graph", "timeseries", "cache"], timeout_s=IDLE_S
        )
    with _address_space(RECONCILE_LIMIT_BYTES):
        drifts = await reconcile.reconcile()
    totals = reconcile.total(drifts)
    drift = sum(totals.values())
    rows = ["| store | checked | missing | extra | duplicated | stale |", "|" + "---|" * 6]
    rows += [
        f"| {d.store} | {d.checked:,} | {len(d.missing):,} | {len(d.extra):,} | "
        f"{len(d.duplicated):,} | {len(d.stale):,} |"
        for d in drifts
    ]
    samples = [
        f"- {d.store} {cat}: {', '.join(map(str, getattr(d, cat)[:3]))}"
        for d in drifts
        for cat in reconcile.CATEGORIES
        if getattr(d, cat)
    ]
    report.add(
        Figure(
            "hygiene",
            "drift left in the derived stores after the run (campus reconcile: missing + "
            "extra + duplicated + stale)",
            drift,
            "facts",
            target="0",
            met=drift == 0,
            note="" if idle else f"the projections were not idle after {IDLE_S} s",
        )
    )
    left = await fixtures.topics_under(*BENCH_TOPIC_PREFIXES)
    report.add(
        Figure(
            "hygiene",
            "bench topics left on Kafka",
            len(left),
            "topics",
            target="0",
            met=not left,
            note=", ".join(left[:5]),
        )
    )
    report.sections["Left behind"] = (
        "`campus reconcile` (read-only) once the projections were idle"
        + ("" if idle else f" (they were not, after {IDLE_S} s)")
        + ":\n\n"
        + "\n".join(rows)
        + ("\n\n" + "\n".join(samples) if samples else "")
    )
