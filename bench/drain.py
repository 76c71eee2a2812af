"""Issue 7: a projection paused while N changes pile up — time to drain after resume, and rate.

N group inserts commit in one statement (each row is its own change on campus.public.groups);
`graph` is paused meanwhile, so its lag climbs to N; then it is resumed and timed to lag 0.
The bench groups, and what they left downstream, are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg

from bench import fixtures
from bench.core import Figure, Report
from bench.throughput import _clean_up


async def run(report: Report, *, quick: bool) -> None:
    n = 10_000 if quick else 100_000
    since = datetime.now(UTC)
    ids: list[int] = []
    async with fixtures.http_client() as http:
        graph = fixtures.url("graph")
        await http.post(f"{graph}/projections/graph/pause")
        try:
            conn = await asyncpg.connect(fixtures.users_dsn())
            try:
                rows = await conn.fetch(
                    "INSERT INTO groups (name, course_code) SELECT 'bench-drain-' || g, 'BENCH' "
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
        drained = await fixtures.wait_idle(http, None, ["graph"], timeout_s=900)
        seconds = time.perf_counter() - started
    report.add(
        Figure(
            "drain",
            f"graph projection: drain {piled:,} piled-up changes after resume",
            round(seconds, 1),
            "s",
            note="" if drained else "did not drain within 900 s",
        )
    )
    report.add(
        Figure(
            "drain",
            "graph projection: drain rate",
            round(piled / seconds) if seconds else 0,
            "changes/s",
            target="(issue 7: report it)",
        )
    )
    await _clean_up(ids, since, 900, report)
