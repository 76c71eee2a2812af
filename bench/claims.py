"""The brief's performance claims, checked against the figures of this run (runs last)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.core import Figure, Report

TITLE = "The brief's performance claims, checked"
# "Much faster": at least this ratio, measured in the same run.
GAIN = 1.5


def find(figures: Sequence[Figure], metric: str, *parts: str) -> Figure | None:
    """The first figure of `metric` whose name contains every one of `parts`."""
    for f in figures:
        if f.metric == metric and all(p in f.name for p in parts):
            return f
    return None


def compare(a: float, b: float, *, other: str = "") -> str:
    """Latency a against b: '2.1x faster than X' / 'on par with X' / '3.0x slower than X'."""
    if b <= 0 or a <= 0:
        return "not comparable"
    ratio = a / b
    than, with_ = (f" than {other}", f" with {other}") if other else ("", "")
    if ratio < 1 / 1.5:
        return f"{1 / ratio:.1f}x faster{than}"
    if ratio > 1.5:
        return f"{ratio:.1f}x slower{than}"
    return f"on par{with_}"


def leaderboard_verdict(*, read_gain: float, write_ratio: float) -> str:
    """Whether Redis is 'much faster': ≥ 1.5x on the read (indexed PostgreSQL / Redis) or on
    the writes (ZINCRBY rate / UPDATE rate), from the measured ratios."""
    reads = read_gain >= GAIN
    writes = write_ratio >= GAIN
    if reads and writes:
        return (
            f"holds: Redis read the top 10 {read_gain:.1f}x faster than indexed PostgreSQL and "
            f"took {write_ratio:.0f}x the writes."
        )
    if writes:
        return (
            f"holds for the writes only: {write_ratio:.0f}x the UPDATE rate, while the indexed "
            f"PostgreSQL read was {compare(read_gain, 1.0, other='Redis')}."
        )
    if reads:
        return (
            f"holds for the read only: {read_gain:.1f}x faster; writes were within {GAIN}x "
            f"({write_ratio:.1f}x)."
        )
    return (
        f"does not hold: the indexed PostgreSQL read was {compare(read_gain, 1.0, other='Redis')}"
        f" and Redis took only {write_ratio:.1f}x the writes."
    )


def cache_verdict(gain: float) -> str:
    """'much faster' needs ≥ 1.5x the throughput; 1.1x to 1.5x is 'weakly'; below, it fails."""
    if gain >= GAIN:
        return "holds"
    if gain >= 1.1:
        return "holds only weakly"
    return "does not hold"


def leaderboard(figures: Sequence[Figure]) -> str:
    redis = find(figures, "M5", "straight from Redis")
    plain = find(figures, "M5", "without an index")
    updates = find(figures, "M5", "PostgreSQL UPDATE")
    gateway = find(figures, "M5", "at the gateway p99")
    claim = (
        '**Claim:** a PostgreSQL leaderboard "needs ORDER BY on every query", O(N log N) per '
        "query, and Redis is much faster."
    )
    if not (redis and plain and updates and redis.anchor_value and plain.anchor_value):
        return f"{claim}\n\nNot measured in this run (M5)."
    indexed = plain.anchor_value
    measured = (
        f"Measured at 100k members (p99): Redis ZREVRANGE {redis.value:g} ms; PostgreSQL with "
        f"an index on points {indexed:g} ms (a Limit over an index scan: 10 rows read, no sort); "
        f"without that index {plain.value:g} ms (a sequential scan and a top-N heapsort of every "
        f"row, the brief's case). Through the gateway: {gateway.value if gateway else '?'} ms. "
        f"Writes: ZINCRBY {updates.anchor_value or 0:,.0f}/s (redis-benchmark) against "
        f"UPDATE {updates.value:,.0f}/s (4 connections)."
    )
    write_ratio = (updates.anchor_value or 0) / updates.value if updates.value else 0
    read_gain = indexed / redis.value if redis.value else 0
    verdict = f"**Verdict:** {leaderboard_verdict(read_gain=read_gain, write_ratio=write_ratio)}"
    if plain.value > indexed * 1.5:
        verdict += (
            f" The O(N log N) cost is real only without an index on points (then "
            f"{plain.value / indexed:.0f}x slower than with it)."
        )
    return f"{claim}\n\n{measured}\n\n{verdict}"


def friends(figures: Sequence[Figure]) -> str:
    claim = (
        '**Claim:** friend-of-friend in SQL needs multiple self-joins and is "O(N²) or '
        'worse"; Neo4j is much faster.'
    )
    rows = [
        f
        for f in figures
        if f.metric == "M6"
        and "Neo4j p50" in f.name
        and "brief's query" not in f.name
        and f.anchor_value
    ]
    if not rows:
        return f"{claim}\n\nNot measured in this run (M6)."
    lines = [
        f"- {f.name.split('(')[-1].rstrip(')')}: Neo4j {f.value:g} ms, PostgreSQL "
        f"{f.anchor_value:g} ms: Neo4j {compare(f.value, f.anchor_value or 0)}"
        for f in rows
    ]
    neo_faster = [f.value < (f.anchor_value or 0) for f in rows]
    growth = ""
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = (
            f" From the smallest to the largest graph PostgreSQL's p50 grew "
            f"{(large.anchor_value or 0) / (small.anchor_value or 1):.1f}x and Neo4j's "
            f"{large.value / small.value:.1f}x for 10x the users: both follow the size of the "
            "two-hop neighbourhood, not N²."
        )
    if all(neo_faster):
        verdict = "**Verdict:** holds: Neo4j answered faster at every size measured."
    elif not any(neo_faster):
        verdict = (
            "**Verdict:** does not hold: with a primary key and a reverse index the SQL "
            "self-join reads only the two-hop neighbourhood (index lookups, not table scans), "
            "and PostgreSQL answered faster at every size measured."
        )
    else:
        verdict = "**Verdict:** holds only at some sizes (see above)."
    return f"{claim}\n\nMeasured p50 (M6):\n" + "\n".join(lines) + f"\n\n{verdict}{growth}"


def cache(figures: Sequence[Figure]) -> str:
    claim = '**Claim:** Redis gives "in-memory speed": cache-aside profiles are much faster.'
    cached = find(figures, "M4", "gateway cached GET", "connections")
    uncached = find(figures, "M4", "gateway uncached GET", "connections")
    cached99 = find(figures, "M4", "gateway cached GET", "p99")
    uncached99 = find(figures, "M4", "gateway uncached GET", "p99")
    redis = find(figures, "M4", "through the gateway")
    if not (cached and uncached and cached99 and uncached99):
        return f"{claim}\n\nNot measured in this run (M4)."
    measured = (
        f"Measured at 64 connections through the gateway: cached {cached.value:,.0f} req/s "
        f"(p99 {cached99.value:g} ms), uncached {uncached.value:,.0f} req/s (p99 "
        f"{uncached99.value:g} ms)."
    )
    if redis and redis.anchor_value:
        measured += (
            f" Redis itself serves {redis.anchor_value:,.0f} GET/s (redis-benchmark), so the "
            "gateway's HTTP and Python work, not the store, bounds a cached read."
        )
    gain = cached.value / uncached.value if uncached.value else 0
    verdict = (
        f"**Verdict:** {cache_verdict(gain)}: the cache gives "
        f"{gain:.1f}x the throughput of a read that goes to the users service and PostgreSQL."
    )
    return f"{claim}\n\n{measured}\n\n{verdict}"


def section(figures: Sequence[Figure]) -> str:
    return "\n\n".join([leaderboard(figures), friends(figures), cache(figures)])


async def run(report: Report, *, quick: bool) -> None:
    report.sections[TITLE] = section(report.figures)
