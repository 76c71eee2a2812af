"""Issue 16, bench hygiene: what the run left behind (runs after every other module).

A bench writes through the product, so its changes and events are on Kafka for good (a log is
not rewritten); every store derived from that log must still agree with it when the run ends.
Checked here with the reconcile the operator runs (`campus reconcile`, read-only), once the
projections are idle, and by listing the Kafka topics a run creates and must delete.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.core import Figure, Report

# Topics a run creates: backlogs and dead letters of its own runners (bench/consumer.py, sinks).
BENCH_TOPIC_PREFIXES = ("bench.", "campus.dlq.bench-")
IDLE_S = 900
RECONCILE_TIMEOUT_S = 1800
# `campus reconcile` folds the log as it reads it (cli/campus_cli/reconcile.py): its memory must
# not grow with the log. Before, it held every record and grew to 19.6 GB on a stack with ~4.5
# million CDC changes (2026-12-02 13:40, OOM-killed).
RECONCILE_MEMORY_MIB = 1024
CAMPUS = Path(sys.executable).parent / "campus"


def _reconcile() -> tuple[dict[str, Any], float]:
    """`campus reconcile --json` as an operator runs it, in a process of its own: its report and
    its peak resident memory in MiB (the kernel's count for that one child, from wait4)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([str(CAMPUS), "reconcile", "--json"], stdout=out)
        killer = threading.Timer(RECONCILE_TIMEOUT_S, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Exit 1 is "drift found", reported below; anything else is a failed run.
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"campus reconcile exited {proc.returncode}")
        out.seek(0)
        return json.loads(out.read()), usage.ru_maxrss / 1024


async def run(report: Report, *, quick: bool) -> None:
    async with fixtures.http_client() as http:
        token = await fixtures.admin_token(http)
        idle = await fixtures.wait_idle(
            http, token, ["graph", "timeseries", "cache"], timeout_s=IDLE_S
        )
    result, peak_mib = await asyncio.to_thread(_reconcile)
    drifts = result["stores"]
    drift = sum(result["total"].values())
    categories = list(result["total"])
    rows = ["| store | checked | " + " | ".join(categories) + " |", "|" + "---|" * 6]
    rows += [
        f"| {d['store']} | {d['checked']:,} | " + " | ".join(f"{d[c]:,}" for c in categories) + " |"
        for d in drifts
    ]
    samples = [
        f"- {d['store']} {cat}: {', '.join(d[f'{cat}_sample'][:3])}"
        for d in drifts
        for cat in categories
        if d[cat]
    ]
    notes = {k: v for d in drifts for k, v in d["notes"].items()}
    records, log_mib = notes.get("log_records", 0), notes.get("log_bytes", 0) / 1024**2
    report.add(
        Figure(
            "hygiene",
            "campus reconcile peak resident memory, reading the whole log",
            round(peak_mib, 1),
            "MiB",
            "the record values it read",
            round(log_mib, 1),
            target=f"≤ {RECONCILE_MEMORY_MIB:,} MiB at any log length",
            met=peak_mib <= RECONCILE_MEMORY_MIB,
            note=f"{records:,} records",
        )
    )
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
