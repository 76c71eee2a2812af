"""M9's pure logic: the generated graph, the BFS that checks both stores, the verdict."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bench.graphdepth import (
    CYPHER_PATH,
    MAX_HOPS,
    NEO4J,
    POSTGRES,
    Case,
    Result,
    adjacency,
    best,
    degree_facts,
    distance,
    friendships,
    guide_table,
    levels,
    pct,
    verdict,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_the_same_seed_gives_the_same_graph_and_another_seed_another() -> None:
    assert friendships(2_000, seed=3) == friendships(2_000, seed=3)
    assert friendships(2_000, seed=3) != friendships(2_000, seed=4)


def test_the_graph_is_simple_connected_and_has_a_heavy_tail() -> None:
    n, m = 5_000, 5
    pairs = friendships(n, m=m)
    assert all(a < b for a, b in pairs)
    assert len(set(pairs)) == len(pairs)
    # The starting clique of m + 1 students, then m new friendships per student.
    assert len(pairs) == (m + 1) * m // 2 + (n - m - 1) * m
    adj = adjacency(n, pairs)
    facts = degree_facts(adj)
    assert facts["mean"] == pytest.approx(2 * m, rel=0.01)
    assert facts["max"] >= 10 * facts["median"]  # a few popular students, many ordinary ones
    reached = set().union(*levels(adj, 1, 20))
    assert reached == set(range(1, n + 1))


def test_levels_hold_exactly_the_students_k_hops_away() -> None:
    # 1-2-3-4-5 in a line, plus 1-6-3: 3 is two hops from 1 by either way.
    adj = adjacency(6, [(1, 2), (2, 3), (3, 4), (4, 5), (1, 6), (3, 6)])
    assert levels(adj, 1, 3) == [{1}, {2, 6}, {3}, {4}]
    assert distance(adj, 1, 5, max_hops=8) == 4
    assert distance(adj, 1, 5, max_hops=3) is None
    assert distance(adj, 2, 2, max_hops=8) == 0


def test_a_percentile_that_reaches_a_timed_out_sample_is_infinite() -> None:
    assert pct([0.1, 0.2, 0.3], 50) == pytest.approx(0.2)
    assert pct([0.1, 0.2, None], 50) == pytest.approx(0.2)
    assert math.isinf(pct([0.1, 0.2, None], 99))
    assert math.isinf(pct([0.1, None, None], 50))
    with pytest.raises(ValueError):
        pct([], 50)


def _result(store: str, *p50_ms: float, variant: str = "q") -> Result:
    # Three samples per repetition, all at the repetition's p50.
    return Result(store, variant, [[ms / 1000] * 3 for ms in p50_ms])


def test_the_verdict_names_the_faster_store_and_its_ratio() -> None:
    neo, pg = _result(NEO4J, 10, 11, 12), _result(POSTGRES, 30, 33, 36)
    assert verdict(neo, pg).startswith(f"{NEO4J} 3.0x faster")
    assert "overlap" not in verdict(neo, pg)
    assert verdict(pg, neo).startswith(f"{POSTGRES} 3.0x faster")


def test_the_verdict_says_when_repetitions_overlap_or_the_stores_tie() -> None:
    overlap = verdict(_result(NEO4J, 10, 10, 40), _result(POSTGRES, 20, 30, 30))
    assert overlap.startswith(f"{NEO4J} 3.0x faster") and "overlap" in overlap
    assert verdict(_result(NEO4J, 10, 10, 10), _result(POSTGRES, 10.5, 10.5, 10.5)).startswith(
        "no winner"
    )


def test_a_store_that_timed_out_loses_and_two_that_did_draw_nothing() -> None:
    gave_up = Result(POSTGRES, "q", [[None, None, None]], gave_up=True)
    assert verdict(_result(NEO4J, 5, 5, 5), best([gave_up], POSTGRES)).startswith(f"{NEO4J} wins")
    slow = Result(NEO4J, "q", [[None, None, 0.1]] * 3)
    assert verdict(slow, _result(POSTGRES, 5, 5, 5)).startswith(f"{POSTGRES} wins")
    assert verdict(None, None).startswith("neither")


def test_each_store_is_judged_by_its_fastest_query() -> None:
    slow, fast = _result(POSTGRES, 50, 50, 50, variant="slow"), _result(POSTGRES, 5, 5, 5)
    neo = _result(NEO4J, 10, 10, 10)
    assert best([slow, fast, neo], POSTGRES) is fast
    table = guide_table([Case("reach at depth 3", 100_000, [], [], [slow, fast, neo])])
    assert "| reach at depth 3 | 100k | 10 ms" in table
    assert f"{POSTGRES} 2.0x faster" in table


def test_the_cypher_path_bound_is_the_sql_bound() -> None:
    # Cypher takes the bound as a literal only; the SQL takes MAX_HOPS as a parameter.
    assert f"*..{MAX_HOPS}]" in CYPHER_PATH


def test_the_teaching_guide_shows_figures_from_a_real_report() -> None:
    guide = (ROOT / "docs" / "teaching-guide.md").read_text()
    found = re.search(r"<!-- m9 from (\S+) -->\n(.*?)<!-- /m9 -->", guide, re.S)
    assert found, "exercise 1 lost its M9 table"
    report = (ROOT / found.group(1)).read_text()
    for line in found.group(2).strip().splitlines():
        if line.startswith(("|", "- ")):
            assert line in report, f"not in {found.group(1)}: {line}"
