"""Issue 14: what tracing costs, on the cached read and on commit → store latency.

Each mode restarts the five services with its tracing settings (an override file that
stack/services/run.sh reads after .env), then measures the same two things: the gateway's
cached GET /users/{id} under wrk, and commit → visible in each store at a steady write rate
(bench.cdc's measurement). "off" is no tracer provider and no instrumentation; "100 %" is the
classroom default, every request and every apply exported to Zipkin.

Repetitions (issue 16): a restart per mode (the settings are read at start-up), then the mode's
timed phase (wrk, then commit → store) `reps(quick=...)` times, each after the projections are
idle again; each figure is the median of the repetitions with min and max, against the median
of tracing off's. A full run shortens each repetition (10 s of wrk, 20 s of writes instead of
30 s and 45 s) to keep the module's time near what one longer pass took.
"""

from __future__ import annotations

import asyncio

import asyncpg

from bench import cdc, fixtures
from bench.api import CONNECTIONS, _load
from bench.core import Figure, Report, reps
from bench.tools import COUNT_CACHE_LUA, WrkResult, rotate_paths_lua


async def _measure(
    *, ids: list[int], token: str | None, seconds: float, cdc_s: float
) -> tuple[WrkResult, dict[str, float]]:
    async with fixtures.http_client() as http:
        await fixtures.wait_idle(http, token, ["graph", "cache", "timeseries"], timeout_s=120)
        gw = fixtures.url("gateway")
        paths = [f"/users/{i}" for i in ids]
        for p in paths:  # fill the cache
            (await http.get(f"{gw}{p}")).raise_for_status()
        if token is None:
            cached = await _load(f"{gw}/users", seconds, rotate_paths_lua(paths) + COUNT_CACHE_LUA)
        else:
            async with fixtures.rate_limit_lifted(http, token, ttl_s=int(seconds) + 60):
                script = rotate_paths_lua(paths) + COUNT_CACHE_LUA
                cached = await _load(f"{gw}/users", seconds, script)
        pool = await asyncpg.create_pool(fixtures.users_dsn(), min_size=4, max_size=16)
        try:
            scratch = Report(quick=True)  # bench.cdc reports into it; we keep only the p99s
            p99s = await cdc._latency(
                scratch, pool=pool, ids=ids, http=http, token=token, duration_s=cdc_s
            )
        finally:
            await pool.close()
    return cached, p99s


async def run(report: Report, *, quick: bool) -> None:
    seconds, cdc_s = (10.0, 15.0) if quick else (10.0, 20.0)
    n = reps(quick=quick)
    async with fixtures.http_client() as http:
        ids = await fixtures.bench_users(http, cdc.USERS)
        try:
            token: str | None = await fixtures.admin_token(http)
        except Exception:
            token = None
    # Per mode, one (wrk result, p99 per store) per repetition.
    results: dict[str, list[tuple[WrkResult, dict[str, float]]]] = {}
    try:
        for mode, override in fixtures.TRACING_MODES.items():
            print(f"   tracing {mode}", flush=True)
            await asyncio.to_thread(fixtures.restart_services, override)
            results[mode] = [
                await _measure(ids=ids, token=token, seconds=seconds, cdc_s=cdc_s) for _ in range(n)
            ]
    finally:
        await asyncio.to_thread(fixtures.restart_for_run)

    off = results["off"]
    for mode in ("10 %", "100 %"):
        runs = results[mode]
        report.add(
            Figure.median_of(
                "T1",
                f"cached GET /users/{{id}}, tracing {mode}, {CONNECTIONS} connections",
                [read.ok_per_s for read, _ in runs],
                "req/s",
                "same, tracing off",
                [read.ok_per_s for read, _ in off],
                digits=0,
            )
        )
        report.add(
            Figure.median_of(
                "T1",
                f"cached GET /users/{{id}} p99, tracing {mode}",
                [read.p99_ms for read, _ in runs],
                "ms",
                "same, tracing off",
                [read.p99_ms for read, _ in off],
            )
        )
        for store, name in {"kafka": "Kafka", **cdc.STORES}.items():
            on = [p99[store] for _, p99 in runs if store in p99]
            base = [p99[store] for _, p99 in off if store in p99]
            if on and base:
                report.add(
                    Figure.median_of(
                        "T2",
                        f"commit → {name} p99 at {cdc.RATE} writes/s, tracing {mode}",
                        on,
                        "ms",
                        "same, tracing off",
                        base,
                        digits=1,
                    )
                )
    report.sections["T1/T2 tracing overhead: how it was measured"] = (
        "Each mode restarts the five services with its tracing settings, then runs "
        f"{n} repetition{'s' if n > 1 else ''}, each: wait for the projections to be idle, wrk "
        f"on the cached profile read ({seconds:g} s after a 1 s warm-up, {CONNECTIONS} "
        f"connections, 50 users rotated), then bench.cdc's commit → store measurement "
        f"({cdc_s:g} s of UPDATEs at {cdc.RATE}/s straight into PostgreSQL, so each change "
        "starts its own trace in each projection). Each figure is the median of the mode's "
        "repetitions (min and max beside it) against the median of tracing off's. Modes in "
        "order: "
        + ", ".join(fixtures.TRACING_MODES)
        + ". Spans go to the Zipkin server of `make up` (in-memory storage) on the same cores."
    )
