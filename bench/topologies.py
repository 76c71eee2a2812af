"""`make bench-topologies`: the single-node and the cluster topology measured one after the
other on this machine, in one run, side by side.

For each topology in turn: `make clean`, `make up [TOPOLOGY=cluster]` (timed), the idle
resident memory of every supervised process (`bench.core.rss_by_component`, three samples),
then, in a fresh process that reads that topology's settings, a warm-up and N repetitions of
  - M1 (bench.cdc): commit → Kafka, Neo4j, Redis and the events table at 200 writes/s, p50/p99;
  - M2 (bench.throughput): CDC changes/s delivered to Kafka, 4 connections inserting flat out;
and once the same INSERTs without CDC (the anchor). Each figure is the median of the
repetitions, with min and max. At the end the stack is wiped (`make clean`) and, if a stack was
running when the run began, that topology is started again (empty): the run wipes the stack's
data before each topology and at the end.
The report goes to bench/results/<date>-topologies/ (report.md, topologies.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx

from bench import cdc, fixtures, throughput
from bench.core import ROOT, Report, machine_facts, percentile, rss_by_component
from bench.env import settings

TOPOLOGIES = ("single", "cluster")
TOPOLOGY_FILE = ROOT / ".stack" / "data" / "topology"
# docs/scaling.md's target for the cluster topology's idle memory.
RSS_TARGET_GIB = 10.0
STORES = ("kafka", "neo4j", "redis", "timeseries")


@dataclass(frozen=True)
class Spec:
    """One figure of the side-by-side table."""

    key: str
    label: str
    unit: str
    # Which way is better, for the reading; None where neither is (a count of processes).
    better: Literal["higher", "lower"] | None


def specs(*, latency_s: float, throughput_s: float) -> list[Spec]:
    names = {
        "kafka": "Kafka record (bare consumer)",
        "neo4j": "visible in Neo4j",
        "redis": "visible in Redis",
        "timeseries": "visible in the events table",
    }
    out = [
        Spec(
            "m2_delivered",
            f"M2 CDC changes/s delivered to Kafka (4 connections inserting flat out, "
            f"{throughput_s:g} s)",
            "changes/s",
            "higher",
        ),
        Spec("m2_commits", "M2 INSERT commits/s into `groups`, CDC on", "commits/s", "higher"),
        Spec(
            "anchor_commits", "the same INSERTs without CDC (campus_bench)", "commits/s", "higher"
        ),
    ]
    for q in (50, 99):
        out += [
            Spec(
                f"m1_{store}_p{q}",
                f"M1 commit → {name} p{q} (200 writes/s, {latency_s:g} s)",
                "ms",
                "lower",
            )
            for store, name in names.items()
        ]
    out += [
        Spec("rss_idle_gib", "resident memory at idle, all processes", "GiB", "lower"),
        Spec("processes", "supervised processes", "", None),
        Spec("up_s", "`make up` from a wiped stack", "s", "lower"),
    ]
    return out


# arithmetic (pure; tests/unit/bench/test_topologies.py) ---------------------------------------


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: Sequence[float]) -> Spread | None:
    """Median, min and max of the repetitions; None when there are none."""
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def reading(spec: Spec, single: Spread | None, cluster: Spread | None) -> str:
    """What the two spreads say, computed: which way the cluster differs, or that the
    repetitions' ranges overlap (then the difference is within this machine's noise)."""
    if single is None or cluster is None:
        return "not measured on both"
    if single.n > 1 and cluster.n > 1 and cluster.low <= single.high and single.low <= cluster.high:
        return "ranges overlap"
    if cluster.median == single.median:
        return "equal"
    higher = cluster.median > single.median
    word = "higher" if higher else "lower"
    if spec.better is None:
        return f"cluster {word}"
    good = higher == (spec.better == "higher")
    return f"cluster {word} ({'better' if good else 'worse'})"


def ratio(single: Spread | None, cluster: Spread | None) -> float | None:
    """cluster median / single median."""
    if single is None or cluster is None or single.median == 0:
        return None
    return round(cluster.median / single.median, 2)


def _fmt(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def cell(s: Spread | None, unit: str) -> str:
    if s is None:
        return "—"
    text = f"{_fmt(s.median)} {unit}".strip()
    if s.n > 1:
        text += f" ({_fmt(s.low)} to {_fmt(s.high)}, n={s.n})"
    return text


def table(rows: Sequence[Spec], results: dict[str, dict[str, list[float]]]) -> str:
    """The side-by-side markdown table from each topology's values per figure key."""
    lines = [
        "| figure | single | cluster | cluster / single | reading |",
        "|---|---|---|---|---|",
    ]
    for spec in rows:
        single = spread(results.get("single", {}).get(spec.key, []))
        cluster = spread(results.get("cluster", {}).get(spec.key, []))
        r = ratio(single, cluster)
        lines.append(
            f"| {spec.label} | {cell(single, spec.unit)} | {cell(cluster, spec.unit)} | "
            f"{'—' if r is None else f'{r:g}x'} | {reading(spec, single, cluster)} |"
        )
    return "\n".join(lines)


def rss_target(cluster_gib: Sequence[float]) -> str:
    s = spread(cluster_gib)
    if s is None:
        return f"Cluster idle memory target ≤ {RSS_TARGET_GIB:g} GiB: not measured."
    met = "met" if s.high <= RSS_TARGET_GIB else "**not met**"
    return (
        f"Cluster idle memory target ≤ {RSS_TARGET_GIB:g} GiB: {met} "
        f"(highest sample {s.high:.2f} GiB)."
    )


def rss_table(rss: dict[str, dict[str, float]]) -> str:
    """Each component's idle MiB per topology (a cluster's members under their own names)."""
    names = sorted(set(rss.get("single", {})) | set(rss.get("cluster", {})))
    lines = ["| process | single MiB | cluster MiB |", "|---|---|---|"]
    for n in names:
        a, b = rss.get("single", {}).get(n), rss.get("cluster", {}).get(n)
        lines.append(
            f"| {n} | {'—' if a is None else f'{a:g}'} | {'—' if b is None else f'{b:g}'} |"
        )
    totals = [sum(rss.get(t, {}).values()) for t in TOPOLOGIES]
    lines.append(f"| **total** | {totals[0]:.0f} | {totals[1]:.0f} |")
    return "\n".join(lines)


# one topology's figures, measured in its own process ------------------------------------------


async def measure(
    topology: str,
    *,
    reps: int,
    latency_s: float,
    throughput_s: float,
    warmup_s: float,
    out: Path | None = None,
) -> dict[str, Any]:
    """M1 and M2 `reps` times on the running stack (after a warm-up M1), the anchor once; the
    figures so far are written to `out` after each repetition (a stopped run keeps them)."""
    if settings().topology != topology:
        raise SystemExit(f"the running stack is {settings().topology}, not {topology}")
    values: dict[str, list[float]] = {}
    notes: list[str] = []
    names = ["graph", "timeseries", "cache"]
    async with fixtures.http_client() as http:
        ids = await fixtures.bench_users(http, cdc.USERS)
        token = await fixtures.admin_token(http)
        pool = await asyncpg.create_pool(fixtures.users_dsn(), min_size=4, max_size=16)
        try:
            if not await fixtures.wait_idle(http, token, names, timeout_s=300):
                notes.append("the projections were not idle before the first repetition")
            if warmup_s:
                await cdc._latency(
                    Report(quick=True),
                    pool=pool,
                    ids=ids,
                    http=http,
                    token=token,
                    duration_s=warmup_s,
                )
            values["anchor_commits"] = [round((await throughput._anchor(20.0)).rate)]
            for rep in range(1, reps + 1):
                print(f"== {topology}: repetition {rep}/{reps}", flush=True)
                try:
                    await _repetition(
                        rep,
                        values,
                        notes,
                        pool=pool,
                        ids=ids,
                        http=http,
                        token=token,
                        latency_s=latency_s,
                        throughput_s=throughput_s,
                    )
                except Exception as exc:  # one failed repetition still leaves the others' figures
                    notes.append(f"repetition {rep} did not complete: {type(exc).__name__}: {exc}")
                if out is not None:
                    text = json.dumps({"values": values, "notes": notes})
                    await asyncio.to_thread(out.write_text, text)
        finally:
            await pool.close()  # the bench users' user.updated rows stay, as in bench/cdc.py
    return {"values": values, "notes": notes}


async def _repetition(
    rep: int,
    values: dict[str, list[float]],
    notes: list[str],
    *,
    pool: asyncpg.Pool,
    ids: list[int],
    http: httpx.AsyncClient,
    token: str,
    latency_s: float,
    throughput_s: float,
) -> None:
    """One M1 and one M2, their figures appended to `values`; M2's rows removed again."""
    names = ["graph", "timeseries", "cache"]
    await fixtures.wait_idle(http, token, names, timeout_s=300)
    report = Report(quick=False)
    await cdc._latency(report, pool=pool, ids=ids, http=http, token=token, duration_s=latency_s)
    for store in STORES:
        ms = [x * 1000 for x in report.series.get(f"latency:cdc_{store}", [])]
        for q in (50, 99):
            if ms:
                values.setdefault(f"m1_{store}_p{q}", []).append(round(percentile(ms, q), 1))
    notes += [f"repetition {rep}, M1 {f.name}: {f.note}" for f in report.figures if f.note]
    notes += [f"repetition {rep}, {k}: {v}" for k, v in report.errors.items()]
    await fixtures.wait_idle(http, token, names, timeout_s=300)
    inserted, arrivals, *_, start, _end = await throughput._with_cdc(throughput_s, drain_s=300.0)
    try:
        delivered_s = arrivals.last_at - start if arrivals.count else 0.0
        values.setdefault("m2_delivered", []).append(
            round(arrivals.count / delivered_s) if delivered_s > 0 else 0
        )
        values.setdefault("m2_commits", []).append(round(inserted.rate))
        if missing := inserted.commits - arrivals.count:
            notes.append(
                f"repetition {rep}, M2: {missing:,} of {inserted.commits:,} changes never arrived"
            )
    finally:
        cleanup = Report(quick=False)
        await throughput._clean_up(inserted.ids, 300.0, cleanup)
        notes += [f"repetition {rep}: {v}" for v in cleanup.sections.values()]


# the run: both topologies, one after the other ------------------------------------------------


def _running() -> str | None:
    """The topology of the stack running now, or None when none is."""
    if not rss_by_component():
        return None
    return TOPOLOGY_FILE.read_text().strip() if TOPOLOGY_FILE.exists() else "single"


def _make(log: Path, *args: str) -> float:
    """Run a make target (output appended to the run's stack.log); its seconds."""
    started = time.monotonic()
    print(f"== make {' '.join(args)}", flush=True)
    with log.open("a") as out:
        out.write(f"\n$ make {' '.join(args)}\n")
        out.flush()
        subprocess.run(["make", *args], cwd=ROOT, check=True, stdout=out, stderr=out)
    return round(time.monotonic() - started, 1)


def _up(log: Path, topology: str, notes: list[str], attempts: int = 3) -> float:
    """`make up`, again when a readiness check timed out (a loaded machine starts slowly;
    stack/up.sh starts only what is not running yet); the seconds of every attempt summed."""
    spent = 0.0
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            _make(log, "up", f"TOPOLOGY={topology}")
            return round(spent + time.monotonic() - started, 1)
        except subprocess.CalledProcessError:
            spent += time.monotonic() - started
            if attempt == attempts:
                raise
            notes.append(f"`make up` attempt {attempt} failed (a readiness timeout): run again")
    raise AssertionError("unreachable")


def _uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{datetime.now(UTC):%H:%M:%S} UTC load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def _idle_rss(samples: int = 3, every_s: float = 10.0) -> tuple[list[float], dict[str, float]]:
    """Total idle RSS (GiB) `samples` times, and the last sample per process (MiB)."""
    totals, last = [], {}
    for i in range(samples):
        if i:
            time.sleep(every_s)
        last = rss_by_component()
        totals.append(round(sum(last.values()) / 1024, 2))
    return totals, last


def run(args: argparse.Namespace) -> Path:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out = ROOT / "bench" / "results" / f"{day}-topologies"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stack.log"
    log.write_text("")
    found = _running()
    # `kill <pid>` (SIGTERM) unwinds like an exception: the report is written, the stack wiped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "reps": args.reps,
        "latency_s": args.latency_s,
        "throughput_s": args.throughput_s,
        "warmup_s": args.warmup_s,
        "found": found,
        "topologies": {},
        "errors": {},
    }
    try:
        for topology in TOPOLOGIES:
            got: dict[str, Any] = {"load": [_uptime()], "values": {}, "notes": []}
            figures = out / f"{topology}.json"
            data["topologies"][topology] = got
            try:
                _make(log, "clean")
                got["values"]["up_s"] = [_up(log, topology, got["notes"])]
                time.sleep(args.settle_s)  # the JVMs finish starting their threads and caches
                totals, by_process = _idle_rss()
                got["values"]["rss_idle_gib"] = totals
                got["values"]["processes"] = [len(by_process)]
                got["rss_mib"] = by_process
                got["load"].append(_uptime())
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.topologies",
                        "--measure",
                        topology,
                        "--reps",
                        str(args.reps),
                        "--latency-s",
                        str(args.latency_s),
                        "--throughput-s",
                        str(args.throughput_s),
                        "--warmup-s",
                        str(args.warmup_s),
                        "--json",
                        str(figures),
                    ],
                    cwd=ROOT,
                    check=True,
                )
            except (subprocess.CalledProcessError, OSError, ValueError) as exc:
                data["errors"][topology] = f"{type(exc).__name__}: {exc}"
            finally:
                # What the measuring process wrote, complete or up to where it stopped.
                if figures.exists():
                    measured = json.loads(figures.read_text())
                    figures.unlink()
                    got["values"] |= measured["values"]
                    got["notes"] += measured["notes"]
            got["load"].append(_uptime())
    except SystemExit:
        data["errors"]["run"] = "stopped (SIGTERM) before it finished"
        raise
    finally:
        # Leave the machine as found: nothing of this run's stacks, the found topology back
        # (empty) if one was running.
        try:
            _make(log, "clean")
            if found:
                _make(log, "up", f"TOPOLOGY={found}")
        except subprocess.CalledProcessError as exc:
            data["errors"]["restore"] = str(exc)
        data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        (out / "topologies.json").write_text(json.dumps(data, indent=2))
        (out / "report.md").write_text(markdown(data))
    print((out / "report.md").read_text())
    return out / "report.md"


def markdown(data: dict[str, Any]) -> str:
    """report.md from topologies.json's content."""
    m = data["machine"]
    rows = specs(latency_s=data["latency_s"], throughput_s=data["throughput_s"])
    tops = data["topologies"]
    results = {t: tops.get(t, {}).get("values", {}) for t in TOPOLOGIES}
    lines = [
        f"# Single node against the cluster topology — {data['started_at']}",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}. Both topologies on this "
        f"machine, one after the other, in one run ({data['started_at']} to "
        f"{data.get('finished_at', '?')}). M1 and M2: median of {data['reps']} repetitions "
        f"(min to max, n), after a {data['warmup_s']:g} s warm-up of M1; the anchor, `make up` and "
        "the process count once per topology; idle memory: three samples 10 s apart. "
        "Ratio = cluster median / single median; the reading is computed from the two ranges.",
        "",
        table(rows, results),
        "",
        rss_target(results.get("cluster", {}).get("rss_idle_gib", [])),
        "",
        "## How it was measured",
        "",
        "M1 (`bench/cdc.py`): UPDATEs of 50 bench users' `full_name` straight into PostgreSQL at "
        "200/s, each with a token and its commit time; a group-less consumer on "
        "`campus.public.users` and pollers every 10 ms of Neo4j, Redis (`user:<id>`; on the "
        "cluster one MGET per node) and the events table say when each write became visible. "
        "M2 (`bench/throughput.py`): 4 connections commit single-row INSERTs into `groups` as "
        "fast as they can; a consumer counts the changes arriving on `campus.public.groups`; "
        "delivered = changes / (last arrival - first commit). The bench groups and what they "
        "left downstream are deleted after each repetition, once every projection instance is "
        "at lag 0 (on the cluster each instance is asked on its own port). PostgreSQL, Neo4j and "
        "the bench client are single in both topologies: the cluster adds Kafka replication "
        "(factor 3, acks=all on 2 in-sync replicas), a second Connect worker, Redis Cluster "
        "and a second instance of every service, all on the same cores.",
        "",
        "## Idle resident memory by process",
        "",
        rss_table({t: tops.get(t, {}).get("rss_mib", {}) for t in TOPOLOGIES}),
        "",
        "## Load on the machine",
        "",
        "Other stacks may share this machine; the load average (`os.getloadavg`) before `make up`, "
        "before the measurements and at the end of each topology's phase:",
        "",
    ]
    for t in TOPOLOGIES:
        lines.append(f"- {t}: " + "; ".join(tops.get(t, {}).get("load", [])))
    notes = [f"- {t}: {n}" for t in TOPOLOGIES for n in tops.get(t, {}).get("notes", [])]
    if notes:
        lines += ["", "## Notes", "", *notes]
    if data.get("errors"):
        lines += ["", "## What did not complete", ""]
        lines += [f"- {k}: {v}" for k, v in data["errors"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of M1 and M2 (3)")
    parser.add_argument("--latency-s", type=float, default=30.0, help="M1's writes (30 s)")
    parser.add_argument("--throughput-s", type=float, default=60.0, help="M2's inserts (60 s)")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="M1 warm-up (10 s)")
    parser.add_argument("--settle-s", type=float, default=30.0, help="wait after make up (30 s)")
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="agree that the run wipes the stack's data (make clean before each topology)",
    )
    parser.add_argument("--measure", choices=TOPOLOGIES, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        result = asyncio.run(
            measure(
                args.measure,
                reps=args.reps,
                latency_s=args.latency_s,
                throughput_s=args.throughput_s,
                warmup_s=args.warmup_s,
                out=args.json,
            )
        )
        args.json.write_text(json.dumps(result))
        return
    if not args.wipe:
        raise SystemExit("this run wipes the stack's data (make clean): pass --wipe")
    run(args)


if __name__ == "__main__":
    main()
