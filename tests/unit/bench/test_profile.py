"""The flame-graph summary: shares of samples counted from py-spy's raw (collapsed) stacks."""

from __future__ import annotations

import pytest

from bench.profile import shares

pytestmark = pytest.mark.unit


def test_shares_count_each_sample_once_per_watched_label() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);OpenTelemetryMiddleware.__call__ (otel.py:2);get_user "
            "(campus_gateway/routes/users.py:9);Pipeline.execute (redis.py:3) 6",
            "main (a.py:1);OpenTelemetryMiddleware.__call__ (otel.py:2);ZipkinExporter.export "
            "(z.py:4) 3",
            "main (a.py:1);idle (loop.py:5) 1",
            "garbage line",
        ]
    )
    found = shares(raw)
    assert found["tracing (OpenTelemetry middleware and export)"] == 0.9
    assert found["Redis round trips"] == 0.6
    assert found["the route's own code"] == 0.6
    assert found["users service call (httpx)"] == 0.0
    assert shares("") == dict.fromkeys(found, 0.0)
