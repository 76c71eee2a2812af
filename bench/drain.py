"""Issue 7: a projection paused while N changes pile up — time to drain after resume, and rate.

N group inserts commit in one statement (each row is its own change on campus.public.groups);
`graph` is paused meanwhile, so its lag climbs to N; then it is resumed and timed to lag 0.
The bench groups and their tombstones are deleted after each repetition (their events rows
stay, as the log keeps their changes); every repetition starts with the projections idle, so
each piles up and drains the same N changes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import asyncpg

from bench import fixtures
from bench.core import Figure, Report, reps
from bench.throughput import _clean_up

# How long the projections may take to catch up: before a repetition, and to drain.
IDLE_S = 900


@dataclass
class Drained:
    piled: int
    seconds: float
    drained: bool

    @property
    def rate(self) -> float:
        return self.piled / self.seconds if self.seconds else 0.0


async def _once(n: int, report: Report) -> Drained:
    """Pause `graph`, insert n groups, wait until all n are on Kafka, resume, time the drain;
    then delete the groups and their tombstones."""
    ids: list[int] = []
    try:
        async with fixtures.http_client() as http:
            token = await fixtures.admin_token(http)
            # The same start for every repetition: nothing behind in any projection.
            await fixtures.wait_idle(
                http, token, ["graph", "timeseries", "cache"], timeout_s=IDLE_S
            )
            graph = fixtures.url("graph")
            await http.post(f"{graph}/projections/graph/pause")
            try:
                conn = await asyncpg.connect(fixtures.users_dsn())
                try:
                    rows = await conn.fetch(
                        "INSERT INTO groups (name, course_code) "
                        "SELECT 'bench-drain-' || g, 'BENCH' "
                        "FROM generate_series(1, $1) g RETURNING id",
                        n,
                    )
                    ids = [r["id"] for r in rows]
                finally:
                    await conn.close()
                # Wait until Debezium has put every change on Kafka: the lag then holds all N.
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    lag = (await fixtures.projections(http, None))["graph"]["total_lag"]
                    if lag >= n:
                        break
                    await asyncio.sleep(0.5)
                piled = lag
            finally:
                await http.post(f"{graph}/projections/graph/resume")
            started = time.perf_counter()
            drained = await fixtures.wait_idle(http, None, ["graph"], timeout_s=IDLE_S)
            seconds = time.perf_counter() - started
    finally:
        await _clean_up(ids, IDLE_S, report)
    return Drained(piled, seconds, drained)


async def run(report: Report, *, quick: bool) -> None:
    n = 10_000 if quick else 100_000
    runs: list[Drained] = []
    for _ in range(reps(quick=quick)):
        runs.append(await _once(n, report))
    # The lag may hold a few changes besides the N inserts: the name gives the median count.
    piled = int(statistics.median_low(r.piled for r in runs))
    stuck = sum(not r.drained for r in runs)
    report.add(
        Figure.median_of(
            "drain",
            f"graph projection: drain {piled:,} piled-up changes after resume",
            [r.seconds for r in runs],
            "s",
            note=f"{stuck} of {len(runs)} did not drain within {IDLE_S} s" if stuck else "",
            digits=1,
        )
    )
    report.add(
        Figure.median_of(
            "drain",
            "graph projection: drain rate",
            [r.rate for r in runs],
            "changes/s",
            target="(issue 7: report it)",
            digits=0,
        )
    )
    times = "once" if len(runs) == 1 else f"{len(runs)} times"
    report.sections["Drain after a pause (issue 7)"] = (
        f"Pause the graph projection, insert {n:,} groups in one statement, wait until their "
        f"changes are all behind it on Kafka, resume and time until its lag is 0: {times}, "
        "each from idle projections and followed by deleting the groups and what they left "
        "downstream. Piled-up changes per repetition: "
        f"{', '.join(f'{r.piled:,}' for r in runs)}; each figure is the median of the "
        "repetitions."
    )
