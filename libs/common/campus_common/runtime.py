"""Interpreter settings every long-running process of ours shares."""

from __future__ import annotations

import gc

# CPython's default collects the youngest generation every 700 net allocations. A projection
# batch allocates tens of thousands of short-lived objects (decoded events, rows, arguments),
# so the default runs hundreds of collections per batch, each of them walking every object
# that survived the last one; sampled in the bench, that showed up as 40 % of the cache
# projection's time attributed to one allocating line. Reference counting frees almost all
# of these objects anyway: only cycles need the collector, and it still runs, less often.
GEN0_THRESHOLD = 20_000


def settle_heap() -> None:
    """After start-up: collect once, then move every survivor (modules, schemas, routes, the
    clients' pools) to the permanent generation, where no later collection walks it again,
    and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
