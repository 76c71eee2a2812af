"""The benchmark helpers' own logic: pacing, visibility bookkeeping, settling, tool output."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.core import Figure
from bench.tools import (
    Pacer,
    Visibility,
    Write,
    notes,
    paced,
    parse_redis_benchmark_csv,
    parse_wrk,
    post_json_lua,
    recovery_s,
    rotate_paths_lua,
    slope,
)

pytestmark = pytest.mark.unit

WRK_OUT = """Running 1s test @ http://127.0.0.1:8000/users/462
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.52ms   17.46ms 109.91ms   92.73%
    Req/Sec   732.00    210.27     1.03k    72.73%
  Latency Distribution
     50%    9.95ms
     75%   11.31ms
     90%   17.26ms
     99%   1.20s
  803 requests in 1.10s, 246.23KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    729.09
Transfer/sec:    223.57KB
BENCH hits=796 misses=7
"""


def test_pacer_spaces_sends_without_drift() -> None:
    pacer = Pacer(200, start=100.0)
    assert pacer.due(0) == 100.0
    assert pacer.due(200) == pytest.approx(101.0)
    assert pacer.count(2.5) == 500
    with pytest.raises(ValueError):
        Pacer(0, start=0.0)


async def test_paced_keeps_the_rate_and_the_concurrency_bound() -> None:
    in_flight = peak = 0

    async def send(n: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1

    started = time.monotonic()
    run = await paced(100, 0.3, send, concurrency=2)
    assert run.sent == 30
    assert peak <= 2
    # 30 sends of 20 ms, two at a time, need at least 0.3 s whatever the schedule says.
    assert time.monotonic() - started >= 0.29


def test_exact_visibility_settles_one_write() -> None:
    v = Visibility(cumulative=False)
    v.committed(Write(key=1, seq=0, committed_at=10.0))
    v.committed(Write(key=1, seq=1, committed_at=10.1))
    assert v.seen(1, 1, at=10.3) == 1
    assert v.latencies == [pytest.approx(0.2)]
    assert v.unresolved == 1 and v.waiting_keys() == [1]
    assert v.seen(1, 1, at=10.4) == 0  # seen twice counts once


def test_cumulative_visibility_settles_every_older_write_to_the_key() -> None:
    v = Visibility(cumulative=True)
    for seq, at in [(0, 10.0), (1, 10.1), (2, 10.2)]:
        v.committed(Write(key=7, seq=seq, committed_at=at))
    v.committed(Write(key=8, seq=3, committed_at=10.3))
    assert v.seen(7, 1, at=10.5) == 2
    assert sorted(round(x, 3) for x in v.latencies) == [0.4, 0.5]
    assert v.oldest_pending() == 10.2
    assert v.seen(7, 2, at=10.6) == 1
    assert v.waiting_keys() == [8]


def test_a_sighting_before_the_bookkeeping_still_counts() -> None:
    v = Visibility(cumulative=False)
    assert v.seen(3, 5, at=20.05) == 0
    v.committed(Write(key=3, seq=5, committed_at=20.0))
    assert v.unresolved == 0 and v.latencies == [pytest.approx(0.05)]


def test_recovery_is_the_first_steady_sample_that_lasts() -> None:
    samples = [
        (0.0, True),
        (5.0, False),
        (10.0, False),
        (11.0, True),
        (12.0, False),
        (13.0, True),
        (14.0, True),
    ]
    assert recovery_s(samples, load_end=10.0) == 3.0
    assert recovery_s(samples[:5], load_end=10.0) is None
    assert recovery_s([(9.0, True), (10.5, True)], load_end=10.0) == 0.5


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 4), (1, 4)]) == 0.0
    assert slope([(1, 4)]) == 0.0


def test_wrk_report_parsed_with_units_and_script_counters() -> None:
    r = parse_wrk(WRK_OUT)
    assert r.requests == 803 and r.requests_per_s == 729.09
    assert r.p50_ms == pytest.approx(9.95) and r.p99_ms == pytest.approx(1200.0)
    assert r.non_2xx == 7 and r.socket_errors == 5
    assert r.extra == {"hits": 796, "misses": 7}
    with pytest.raises(ValueError):
        parse_wrk("wrk: connection refused")


def test_redis_benchmark_csv_parsed() -> None:
    out = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
        '"p99_latency_ms","max_latency_ms"\n'
        '"ZINCRBY bench:zincrby 1 __rand_int__","63291.14","0.624","0.096","0.511","1.343",'
        '"2.311","4.951"\n'
    )
    (r,) = parse_redis_benchmark_csv(out)
    assert r.requests_per_s == 63291.14 and r.p50_ms == 0.511 and r.p99_ms == 2.311
    with pytest.raises(ValueError):
        parse_redis_benchmark_csv("ERR")


def test_wrk_scripts_quote_their_data() -> None:
    assert '{"/users/1", "/users/2"}' in rotate_paths_lua(["/users/1", "/users/2"])
    script = post_json_lua('{"title": "it\'s"}')
    assert 'wrk.body = \'{"title": "it\\\'s"}\'' in script
    signed = post_json_lua("{}", {"authorization": "Bearer a.b'c"})
    assert "wrk.headers['authorization'] = 'Bearer a.b\\'c'" in signed


def test_notes_list_the_figures_of_one_metric() -> None:
    figures = [
        Figure("M4", "cached", 1, "req/s", note="2% cache misses"),
        Figure("M4", "health", 1, "req/s"),
        Figure("M1", "kafka", 1, "ms", note="other metric"),
    ]
    assert notes(figures, "M4") == "- cached: 2% cache misses"
    assert notes(figures, "M7") == ""
