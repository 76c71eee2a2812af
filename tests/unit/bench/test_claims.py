"""The claims section reads the figures and says plainly where each claim holds."""

from __future__ import annotations

import pytest

from bench.claims import cache, compare, find, friends, leaderboard, section
from bench.core import Figure

pytestmark = pytest.mark.unit

FIGURES = [
    Figure("M5", "leaderboard top 10 at the gateway p99 (100k members)", 4.2, "ms", "pg", 0.3),
    Figure(
        "M5",
        "top 10 straight from Redis (ZREVRANGE from this process) p99",
        0.5,
        "ms",
        "PostgreSQL p99",
        0.3,
    ),
    Figure(
        "M5",
        "PostgreSQL top 10 without an index on points (the brief's table) p99",
        15.0,
        "ms",
        "with the index p99",
        0.3,
    ),
    Figure(
        "M5",
        "PostgreSQL UPDATE points = points + 1, 4 connections",
        4000,
        "updates/s",
        "redis-benchmark ZINCRBY",
        80000,
    ),
    Figure(
        "M6",
        "friend-of-friend top 10, Neo4j p50 (10k users x ~50 friends)",
        20.0,
        "ms",
        "same query in PostgreSQL p50",
        4.0,
    ),
    Figure(
        "M6",
        "friend-of-friend top 10, Neo4j with the brief's query p50 (10k users)",
        30.0,
        "ms",
        "tuned",
        20.0,
    ),
    Figure("M4", "gateway cached GET /users/{id}, 64 connections", 1600, "req/s", "bare", 3000),
    Figure("M4", "gateway cached GET /users/{id} p99", 20.0, "ms", "bare p99", 10.0),
    Figure("M4", "gateway uncached GET /users/{id}, 64 connections", 500, "req/s", "bare", 3000),
    Figure("M4", "gateway uncached GET /users/{id} p99", 80.0, "ms", "bare p99", 10.0),
    Figure("M4", "cached GET /users/{id} through the gateway", 1600, "req/s", "rb", 60000),
]


def test_find_matches_metric_and_every_part() -> None:
    f = find(FIGURES, "M4", "gateway uncached GET", "p99")
    assert f is not None and f.value == 80.0
    assert find(FIGURES, "M9", "anything") is None


def test_compare_reads_latencies() -> None:
    assert compare(1.0, 3.0) == "3.0x faster"
    assert compare(3.0, 1.0, other="Redis") == "3.0x slower than Redis"
    assert compare(1.0, 1.2, other="Redis") == "on par with Redis"
    assert compare(0, 1.0) == "not comparable"


def test_leaderboard_claim_holds_only_without_the_index() -> None:
    text = leaderboard(FIGURES)
    assert "only without an index" in text and "50x slower than with it" in text
    assert "1.7x faster than Redis" in text  # 0.3 ms indexed vs 0.5 ms Redis
    assert "20x the UPDATE rate" in text


def test_friends_claim_verdict_follows_the_numbers() -> None:
    assert "does not hold" in friends(FIGURES)
    faster = [Figure("M6", "friend-of-friend top 10, Neo4j p50 (10k users)", 2.0, "ms", "pg", 4.0)]
    assert "**Verdict:** holds:" in friends(faster)
    mixed = [
        *faster,
        Figure("M6", "friend-of-friend top 10, Neo4j p50 (100k users)", 9.0, "ms", "pg", 8.0),
    ]
    text = friends(mixed)
    assert "holds only at some sizes" in text and "grew 2.0x" in text


def test_cache_claim_measures_the_gain() -> None:
    text = cache(FIGURES)
    assert "3.2x the throughput" in text and "60,000 GET/s" in text


def test_missing_figures_are_said_not_guessed() -> None:
    assert section([]).count("Not measured in this run") == 3


@pytest.mark.parametrize(
    ("read_gain", "write_ratio", "start"),
    [
        (3.0, 20.0, "holds:"),
        (0.8, 20.0, "holds for the writes only"),
        (3.0, 1.0, "holds for the read only"),
        (1.0, 1.2, "does not hold"),
    ],
)
def test_the_leaderboard_verdict_follows_the_measured_ratios(
    read_gain: float, write_ratio: float, start: str
) -> None:
    from bench.claims import leaderboard_verdict

    assert leaderboard_verdict(read_gain=read_gain, write_ratio=write_ratio).startswith(start)


@pytest.mark.parametrize(
    ("gain", "verdict"), [(2.0, "holds"), (1.2, "holds only weakly"), (0.9, "does not hold")]
)
def test_the_cache_verdict_can_say_it_holds_or_not(gain: float, verdict: str) -> None:
    from bench.claims import cache_verdict

    assert cache_verdict(gain) == verdict


def test_a_leaderboard_section_where_redis_wins_says_the_claim_holds() -> None:
    figures = [
        Figure("M5", "top 10 straight from Redis p99", 0.1, "ms", "PostgreSQL p99", 0.5),
        Figure("M5", "PostgreSQL top 10 without an index on points p99", 15.0, "ms", "idx", 0.5),
        Figure("M5", "PostgreSQL UPDATE points", 4000, "updates/s", "ZINCRBY", 80000),
    ]
    assert "**Verdict:** holds:" in leaderboard(figures)
