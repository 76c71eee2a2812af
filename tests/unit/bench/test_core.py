"""The benchmark suite's own arithmetic and report writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core import (
    TOPOLOGY,
    Figure,
    Report,
    before_after,
    percentile,
    previous_figures,
    summarize_ms,
)

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_ranks() -> None:
    samples = [1.0, 2.0, 3.0, 4.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_is_in_milliseconds() -> None:
    s = summarize_ms([0.001, 0.002, 0.003])
    assert s["n"] == 3 and s["p50_ms"] == 2.0 and s["max_ms"] == 3.0


def test_figure_ratio_against_its_anchor() -> None:
    assert Figure("M4", "cached", 1500, "req/s", "bare", 3000).ratio == 0.5
    assert Figure("M4", "cached", 1500, "req/s").ratio is None
    assert Figure("M4", "cached", 1500, "req/s", "bare", 0).ratio is None


def test_a_repeated_figure_is_the_median_of_its_runs_with_the_spread(tmp_path: Path) -> None:
    f = Figure.median_of(
        "M4",
        "posts/s",
        [190.0, 170.0, 210.0],
        "posts/s",
        "insert_one",
        [800.0, 900.0, 850.0],
        "≥ 50 %",
        met=lambda value, anchor: anchor is not None and value >= 0.5 * anchor,
    )
    assert (f.value, f.anchor_value, f.ratio, f.met) == (190.0, 850.0, 0.224, False)
    assert f.runs == [190.0, 170.0, 210.0] and f.anchor_runs == [800.0, 900.0, 850.0]
    single = Figure.median_of("M3", "records/s", [5.0], "records/s")
    assert (single.value, single.anchor_value, single.met) == (5.0, None, None)
    with pytest.raises(ValueError):
        Figure.median_of("M3", "records/s", [], "records/s")
    report = Report(quick=False)
    report.add(f)
    report.add(single)
    text = report.write(tmp_path).read_text()
    assert "| 190 posts/s (min 170, max 210, n=3) | insert_one |" in text
    assert "| 850 posts/s (min 800, max 900, n=3) | 0.224 |" in text
    assert "| 5 records/s | — | — |" in text  # one run: no range
    saved = json.loads((tmp_path / "figures.json").read_text())["figures"][0]
    assert saved["runs"] == [190.0, 170.0, 210.0]


def test_report_writes_markdown_json_and_plots(tmp_path: Path) -> None:
    report = Report(quick=True)
    report.add(Figure("M1", "commit to Kafka p99", 12.5, "ms", "none", None, "≤ 250 ms", True))
    report.add(Figure("M4", "cached GET", 1500, "req/s", "bare uvicorn", 3000, "≥ 50 %", True))
    report.series["latency:m1"] = [0.01, 0.02, 0.03]
    report.sections["Claims"] = "Redis is faster: holds."
    report.errors["M6"] = "neo4j down"
    path = report.write(tmp_path)
    text = path.read_text()
    assert "| M4 | cached GET | 1500 req/s | bare uvicorn | 3000 req/s | 0.5 |" in text
    assert "## Claims" in text and "M6: neo4j down" in text
    data = json.loads((tmp_path / "figures.json").read_text())
    assert data["figures"][1]["ratio"] == 0.5 and data["machine"]["cores"]
    assert (tmp_path / "latency_m1.png").stat().st_size > 1000


def test_before_after_compares_each_figure_with_the_newest_earlier_run_that_measured_it(
    tmp_path: Path,
) -> None:
    def run(day: str, started: str, quick: bool, figures: dict[str, float]) -> None:
        report = Report(quick=quick, started_at=started, machine={})
        for name, value in figures.items():
            report.add(Figure("M4", name, value, "req/s", "bare", 1000))
        (tmp_path / day).mkdir()
        (tmp_path / day / "figures.json").write_text(json.dumps(report.to_json()))

    run("old", "2026-11-01T00:00:00+00:00", True, {"cached GET": 100, "GET /health": 10})
    run("full", "2026-11-20T00:00:00+00:00", False, {"cached GET": 999, "GET /health": 999})
    run("new", "2026-11-10T00:00:00+00:00", True, {"cached GET": 200})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "figures.json").write_text("{not json")

    previous = previous_figures(tmp_path, quick=True)
    assert previous is not None and previous["started_at"].startswith("2026-11-10")
    # The newest quick run measured one figure: the older quick run is the baseline of the
    # other, the full run of neither.
    assert previous["runs"] == ["2026-11-10T00:00:00+00:00", "2026-11-01T00:00:00+00:00"]

    now = Report(quick=True, machine={})
    now.add(Figure("M4", "cached GET", 500, "req/s", "bare", 1000))
    now.add(Figure("M4", "GET /health", 20, "req/s", "bare", 1000))
    now.add(Figure("M4", "GET /health/live", 900, "req/s", "bare", 1000))
    table = before_after(previous, now)
    assert "| M4 | cached GET | 200 req/s | 500 req/s | 2.50x | 0.2 → 0.5 |" in table
    assert "| M4 | GET /health | 10 req/s | 20 req/s | 2.00x | 0.01 → 0.02 |" in table
    assert "| M4 | GET /health/live | — | 900 req/s | new | — |" in table
    assert previous_figures(tmp_path / "none", quick=True) is None


def test_before_after_never_compares_across_topologies(tmp_path: Path) -> None:
    for day, topology in (("single", None), ("cluster", "cluster")):
        report = Report(
            quick=False, started_at=f"2026-12-0{1 + (topology is not None)}", machine={}
        )
        report.add(Figure("M1", "CDC throughput", 1.0, "rows/s"))
        if topology:
            report.sections[TOPOLOGY] = topology
        (tmp_path / day).mkdir()
        (tmp_path / day / "figures.json").write_text(json.dumps(report.to_json()))

    cluster = previous_figures(tmp_path, quick=False, topology="cluster")
    assert cluster is not None and cluster["started_at"] == "2026-12-02"
    # Reports from before the cluster topology (no section) count as the single node's.
    single = previous_figures(tmp_path, quick=False)
    assert single is not None and single["started_at"] == "2026-12-01"
