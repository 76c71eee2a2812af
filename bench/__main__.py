"""`make bench`: run every benchmark against the native stack and write the report."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import fixtures
from bench.core import (
    PROGRESS,
    ROOT,
    TOPOLOGY,
    TRACING,
    Report,
    before_after,
    previous_figures,
    rss_by_component,
)
from campus_common import runtime

# Each module has `async def run(report, *, quick)`; order: cheap and independent first.
SUITE = [
    "bench.consumer",  # M3
    "bench.friends",  # M6
    "bench.graphdepth",  # M9: depth-3 reach and shortest paths (loads and drops its own graph)
    "bench.leaderboard",  # M5
    "bench.sinks",  # M7, projection backlogs
    "bench.api",  # M4, documents feed and writes, analytics
    "bench.cdc",  # M1, M8 (wants idle projections, so after the bulk writers above)
    "bench.throughput",  # M2 (it leaves a backlog and cleans up after itself)
    "bench.drain",  # issue 7: drain after a pause
    "bench.tracing",  # issue 14: tracing on vs off (restarts the services per mode)
    "bench.claims",  # the brief's claims against the figures above (measures nothing)
    "bench.hygiene",  # what the run left behind: drift (campus reconcile), bench topics
]
# Modules that measure the stores straight, never through the five services: a run of only
# these does not restart the services for its tracing mode.
STORES_ONLY = {"bench.consumer", "bench.friends", "bench.graphdepth"}


def running_topology() -> str:
    """The topology the running stack was started with (stack/up.sh keeps it)."""
    path = ROOT / ".stack" / "data" / "topology"
    return path.read_text().strip() if path.exists() else "single"


async def main(quick: bool, only: list[str], topology: str | None = None) -> None:
    running = running_topology()
    if topology and topology != running:
        raise SystemExit(
            f"--topology {topology}, but the running stack is {running}: "
            f"make clean && make up TOPOLOGY={topology}"
        )
    report = Report(quick=quick)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    name = f"{day}-{'-'.join(only)}" if only else day
    if running != "single":
        name += f"-{running}"
    if quick:
        # A quick run never overwrites the full report of the same day (the teaching guide
        # quotes full reports, and the docs suite runs the quick ones).
        name += "-quick"
    results = ROOT / "bench" / "results"
    out = results / name
    if out.exists() and not quick:
        # A second full run on one day keeps the first's report (the docs quote full reports
        # by their folder): this one is named after its start time too.
        out = results / f"{name}-{report.started_at[11:16].replace(':', '')}"
    # Read before this run writes its own; only a run of the same topology is a baseline.
    previous = previous_figures(results, quick=quick, topology=running)
    report.sections[TOPOLOGY] = running
    report.sections["Resident memory at idle (MiB)"] = _rss_table(rss_by_component())
    selected = [name for name in SUITE if not only or any(o in name for o in only)]
    if running == "single" and not set(selected) <= STORES_ONLY:
        # Issue 14: every request traced for the classroom, a lower rate for benchmarks.
        report.sections[TRACING] = (
            f"The services run with tracing at {fixtures.BENCH_TRACING} sampling for the whole "
            "run (restarted so at its start, and with `.env` again at its end); figures named "
            "'tracing 100 %' and T1/T2 measure the classroom default beside it."
        )
        async with fixtures.run_tracing(fixtures.BENCH_TRACING):
            await _run_suite(report, quick=quick, modules=selected, out=out)
    else:
        await _run_suite(report, quick=quick, modules=selected, out=out)
    report.sections["Resident memory at the end (MiB)"] = _rss_table(rss_by_component())
    comparison = before_after(previous, report) if previous else "no earlier report to compare"
    report.sections["Before → after"] = comparison
    path = report.write(out)
    print(path.read_text())
    print("== before → after\n" + comparison)
    print(f"written to {path.parent}")


async def _run_suite(report: Report, *, quick: bool, modules: list[str], out: Path) -> None:
    for done, name in enumerate(modules, 1):
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(name)
            # The projections and consumers some modules run in this process get the
            # services' interpreter settings (campus_common.web does this after start-up).
            runtime.settle_heap()
            await module.run(report, quick=quick)
        except Exception as exc:
            report.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        # Written after every module, so a run that dies later (the 13:40 run of 2026-12-02
        # was killed in its last module) keeps what it measured; the end writes it again.
        report.sections[PROGRESS] = f"{done} of {len(modules)} modules ran (up to {name})"
        report.write(out, plots=False)


def _rss_table(rss: dict[str, float]) -> str:
    rows = ["| process | RSS MiB |", "|---|---|"]
    rows += [f"| {k} | {v:g} |" for k, v in sorted(rss.items())]
    rows.append(f"| **total** | {sum(rss.values()):.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short version (about 10 minutes)")
    parser.add_argument(
        "only", nargs="*", help="run only benchmarks whose module name contains this"
    )
    parser.add_argument(
        "--topology",
        choices=("single", "cluster"),
        help="refuse to run unless the running stack has this topology (make up TOPOLOGY=...)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.quick, args.only, args.topology))
