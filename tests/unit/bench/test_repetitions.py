"""The repeated benchmarks (cdc, throughput) report the median of their repetitions under the
names a single run gives, and judge their targets on the medians."""

from __future__ import annotations

from typing import Any

import pytest

from bench import cdc, throughput
from bench.core import Figure, Report
from bench.tools import PacedRun, Visibility

pytestmark = pytest.mark.unit


def latency_run(kafka_ms: float, store_ms: float, staleness_s: float) -> cdc.LatencyRun:
    seen = {}
    for store in ("kafka", *cdc.STORES):
        v = Visibility(cumulative=False)
        v.latencies = [(kafka_ms if store == "kafka" else store_ms) / 1000] * 10
        seen[store] = v
    sample = {"t": 0.0, "lag": 0, "time_lag_s": 0.0, "staleness_s": staleness_s}
    return cdc.LatencyRun(seen, PacedRun(sent=4000, elapsed_s=20.0), {"graph": [sample]})


def by_name(report: Report, part: str) -> Figure:
    (figure,) = [f for f in report.figures if part in f.name]
    return figure


def test_m1_reports_the_median_of_the_repetitions_under_the_whole_run_s_name() -> None:
    report = Report(quick=False, machine={})
    p99s = cdc._report_latency(
        report,
        [latency_run(50, 100, 0.4), latency_run(60, 300, 0.5), latency_run(40, 120, 2.0)],
    )
    neo4j = by_name(report, "Neo4j (graph) p99")
    # 3 x 4,000 writes: the name a single run of 12,000 writes had.
    assert neo4j.name == "commit → visible in Neo4j (graph) p99 (200 writes/s, 12,000 writes)"
    assert (neo4j.value, neo4j.anchor_value) == (120.0, 50.0)
    assert neo4j.runs == [100.0, 300.0, 120.0] and neo4j.anchor_runs == [50.0, 60.0, 40.0]
    # Judged on the medians: 120 ≤ 250 and 120 - 50 ≤ 2 x 50, though one run missed both.
    assert neo4j.met is True and p99s["neo4j"] == 120.0 and p99s["kafka"] == 50.0
    stale = by_name(report, "staleness of `graph`")
    assert (stale.value, stale.met) == (500.0, True)
    assert len(report.series["latency:cdc_redis"]) == 30


def lag_run(time_lag_s: float, *, settles: bool) -> cdc.LagRun:
    # Load from t=1 to t=10: a baseline sample, one during, one after.
    rows: list[dict[str, Any]] = [
        {"t": 0.0, "lag": 0, "time_lag_s": 0.0, "staleness_s": None},
        {"t": 5.0, "lag": 40, "time_lag_s": time_lag_s, "staleness_s": None},
        {
            "t": 11.0,
            "lag": 0 if settles else 500,
            "time_lag_s": 0.1 if settles else 3.0,
            "staleness_s": None,
        },
    ]
    return cdc.LagRun({"graph": rows}, PacedRun(sent=4000, elapsed_s=10.0), 1.0, 10.0)


def test_m8_back_to_steady_needs_the_median_repetition_settled() -> None:
    report = Report(quick=False, machine={})
    runs = [lag_run(0.5, settles=True), lag_run(2.0, settles=False), lag_run(0.8, settles=False)]
    cdc._report_lag(report, runs, duration_s=120, m1_p99_ms={"neo4j": [100.0, 200.0, 300.0]})
    lag = by_name(report, "max time lag")
    assert lag.name == "`graph` max time lag at 400 writes/s for 120 s"
    assert (lag.value, lag.anchor_value, lag.met) == (0.8, 0.2, True)
    back = by_name(report, "back to steady")
    assert back.runs == [1.0, cdc.RECOVERY_WINDOW_S, cdc.RECOVERY_WINDOW_S]
    assert back.met is False and "2 of 3 repetitions" in back.note

    one = Report(quick=False, machine={})
    cdc._report_lag(one, runs[:1] * 2 + runs[1:2], duration_s=120, m1_p99_ms={})
    assert by_name(one, "back to steady").met is True


def cdc_run(commits: int, end_lag_kib: int, median_kib: int) -> throughput.CdcRun:
    inserted = throughput.Inserted(commits=commits, seconds=100.0)
    arrivals = throughput.Arrivals(count=commits, last_at=100.0)
    lags = [median_kib * 1024] * 5 + [end_lag_kib * 1024]
    slot = [(float(10 + i * 10), lag, i * 1_000_000) for i, lag in enumerate(lags)]
    return throughput.CdcRun(inserted, arrivals, slot, start=0.0, end=99.0)


def test_m2_figures_are_medians_named_as_the_whole_run() -> None:
    report = Report(quick=False, machine={})
    anchors = [throughput.Inserted(commits=c, seconds=20.0) for c in (60_000, 64_000, 50_000)]
    runs = [cdc_run(200_000, 900, 800), cdc_run(150_000, 5000, 800), cdc_run(180_000, 1500, 700)]
    throughput._report(report, anchors, runs, duration_s=300, anchor_s=20)
    delivered = by_name(report, "CDC changes/s delivered")
    assert delivered.name.endswith("4 connections inserting flat out for 300 s")
    assert (delivered.value, delivered.anchor_value) == (1800.0, 3000.0)
    assert delivered.met is False  # 1,800 < 80 % of 3,000 and < 2,000
    slot = by_name(report, "replication slot lag")
    # Medians: 1,500 KiB at the end against 800 KiB: within 2x, though one run was not.
    assert (slot.value, slot.anchor_value, slot.met) == (1500.0, 800.0, True)
    assert report.series["m2_slot_lag_kib"][:2] == [800.0, 800.0]
