"""The flame-graph summary: shares of samples counted from py-spy's raw (collapsed) stacks."""

from __future__ import annotations

import pytest

from bench.profile import hottest, shares

pytestmark = pytest.mark.unit


def test_shares_count_each_sample_once_per_watched_label() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);OpenTelemetryMiddleware.__call__ (otel.py:2);get_user "
            "(campus_gateway/routes/users.py:9);Pipeline.execute (redis.py:3) 6",
            "main (a.py:1);OpenTelemetryMiddleware.__call__ (otel.py:2);"
            "_get_default_span_details (fastapi/__init__.py:586) 2",
            "main (a.py:1);BatchProcessor.worker (b.py:1);ZipkinExporter.export (z.py:4) 3",
            "main (a.py:1);idle (loop.py:5) 1",
            "garbage line",
        ]
    )
    found = shares(raw)
    # The middleware frame wraps every request: only frames doing tracing work count.
    assert found["tracing (spans: start, attributes, end, export)"] == 0.417  # 5 of 12 samples
    assert found["Redis round trips"] == 0.5
    assert found["the route's own code"] == 0.5
    assert found["users service call (httpx)"] == 0.0
    assert shares("") == dict.fromkeys(found, 0.0)


def test_hottest_ranks_leaf_frames_by_their_samples() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);apply (p.py:5);op (cache.py:169) 5",
            "main (a.py:1);decode (p.py:9);op (cache.py:169) 3",
            "main (a.py:1);decode (p.py:9) 2",
            "garbage line",
        ]
    )
    # A frame's self time adds up over every stack it ends, whoever called it.
    assert hottest(raw, top=2) == [("op (cache.py:169)", 0.8), ("decode (p.py:9)", 0.2)]
    assert hottest("") == []
