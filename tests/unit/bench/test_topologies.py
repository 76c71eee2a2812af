"""The side-by-side report of `make bench-topologies`: its arithmetic and its readings are
computed from the figures, never fixed text."""

from __future__ import annotations

import pytest

from bench.topologies import (
    RSS_TARGET_GIB,
    Spec,
    markdown,
    ratio,
    reading,
    rss_target,
    specs,
    spread,
    table,
)

pytestmark = pytest.mark.unit

LATENCY = Spec("m1_neo4j_p99", "commit → Neo4j p99", "ms", "lower")
THROUGHPUT = Spec("m2_delivered", "changes/s delivered", "changes/s", "higher")


def test_spread_is_median_min_max() -> None:
    s = spread([30.0, 10.0, 20.0])
    assert s is not None
    assert (s.median, s.low, s.high, s.n) == (20.0, 10.0, 30.0, 3)
    assert spread([]) is None


def test_ratio_is_cluster_over_single() -> None:
    assert ratio(spread([100.0]), spread([150.0])) == 1.5
    assert ratio(spread([0.0]), spread([1.0])) is None
    assert ratio(None, spread([1.0])) is None


def test_reading_follows_the_direction_that_is_better() -> None:
    fast, slow = spread([10.0, 11.0, 12.0]), spread([20.0, 21.0, 25.0])
    assert reading(LATENCY, fast, slow) == "cluster higher (worse)"
    assert reading(LATENCY, slow, fast) == "cluster lower (better)"
    assert reading(THROUGHPUT, fast, slow) == "cluster higher (better)"
    assert reading(THROUGHPUT, slow, fast) == "cluster lower (worse)"


def test_overlapping_repetitions_are_no_difference() -> None:
    assert reading(LATENCY, spread([10.0, 15.0, 20.0]), spread([18.0, 25.0, 30.0])) == (
        "ranges overlap"
    )
    assert reading(LATENCY, None, spread([1.0])) == "not measured on both"


def test_table_has_a_row_per_figure_with_both_topologies() -> None:
    results = {
        "single": {"m2_delivered": [1000.0, 1100.0, 900.0]},
        "cluster": {"m2_delivered": [500.0, 520.0, 480.0]},
    }
    text = table([THROUGHPUT, LATENCY], results)
    rows = text.splitlines()
    assert len(rows) == 4
    assert "1,000 changes/s (900 to 1,100, n=3)" in rows[2]
    assert "500 changes/s (480 to 520, n=3)" in rows[2]
    assert "| 0.5x |" in rows[2] and "cluster lower (worse)" in rows[2]
    assert rows[3].endswith("| — | — | — | not measured on both |")


def test_rss_target_is_checked_against_the_highest_sample() -> None:
    assert "met" in rss_target([4.1, 4.2, 4.0]) and "not met" not in rss_target([4.2])
    assert "**not met**" in rss_target([RSS_TARGET_GIB - 1, RSS_TARGET_GIB + 0.5])
    assert "not measured" in rss_target([])


def test_report_names_load_errors_and_every_figure() -> None:
    data = {
        "started_at": "2026-12-01T21:00:00+00:00",
        "finished_at": "2026-12-01T21:30:00+00:00",
        "machine": {"cores": 2, "memory_gib": 16, "os": "Linux"},
        "reps": 3,
        "latency_s": 30.0,
        "throughput_s": 60.0,
        "warmup_s": 10.0,
        "topologies": {
            "single": {
                "values": {"rss_idle_gib": [2.0, 2.1, 2.0]},
                "load": ["21:00:00 UTC load average 3.00, 2.00, 1.00"],
                "rss_mib": {"kafka": 400.0},
                "notes": [],
            },
            "cluster": {
                "values": {"rss_idle_gib": [4.0]},
                "load": [],
                "rss_mib": {"kafka-1": 390.0},
                "notes": ["repetition 2 did not complete"],
            },
        },
        "errors": {"restore": "make up failed"},
    }
    text = markdown(data)
    for spec in specs(latency_s=30.0, throughput_s=60.0):
        assert spec.label in text
    assert "load average 3.00" in text
    assert "repetition 2 did not complete" in text and "make up failed" in text
    assert "| kafka-1 | — | 390 |" in text


def test_two_instances_of_a_projection_add_their_lag() -> None:
    from bench.fixtures import _merged

    one = {"name": "graph", "total_lag": 3, "time_lag_s": 0.5, "staleness_s": None}
    two = {"name": "graph", "total_lag": 4, "time_lag_s": 1.5, "staleness_s": 0.2}
    merged = _merged([one | {"_service": "graph"}, two | {"_service": "graph"}])
    assert merged == {"name": "graph", "total_lag": 7, "time_lag_s": 1.5, "staleness_s": 0.2}
    assert _merged([one | {"_service": "graph"}]) == one
