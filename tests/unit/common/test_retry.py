"""campus_common.retry: retries only what it is told to, backs off with jitter under a cap,
and lets its owner stop the waiting."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import tenacity

from campus_common.retry import backoff, retrying

pytestmark = pytest.mark.unit
log = logging.getLogger("test")


async def test_retries_what_it_names_until_it_succeeds() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("store down")
        return "ok"

    async for attempt in retrying("flaky", on=ConnectionError, log=log, initial_s=0.01):
        with attempt:
            result = await flaky()
    assert (result, calls) == ("ok", 3)


async def test_anything_else_propagates_at_once() -> None:
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retrying("bad data", on=ConnectionError, log=log, initial_s=0.01):
            with attempt:
                calls += 1
                raise ValueError("never applies")
    assert calls == 1


async def test_a_predicate_and_a_limit_on_attempts() -> None:
    calls = 0
    with pytest.raises(OSError, match="503"):
        async for attempt in retrying(
            "upstream", on=lambda e: "503" in str(e), log=log, attempts=3, initial_s=0.01
        ):
            with attempt:
                calls += 1
                raise OSError("503")
    assert calls == 3


async def test_setting_stop_ends_the_wait_and_reraises() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        async for attempt in retrying(
            "down for good", on=ConnectionError, log=log, stop=stop, initial_s=5.0, cap_s=5.0
        ):
            with attempt:
                raise ConnectionError("still down")
    # A 5 s wait was cut short by the stop.
    assert time.monotonic() - started < 2.0


def test_waits_are_jittered_and_capped() -> None:
    wait = backoff(initial_s=0.5, cap_s=5.0)
    waits = []
    for n in range(1, 40):
        state = tenacity.RetryCallState(
            retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={}
        )
        state.attempt_number = n
        waits.append(wait(state))
    assert all(0 <= w <= 5.0 for w in waits)
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 1.5  # jitter: at most the first wait
    assert max(waits) == 5.0  # the cap is reached
    assert len({round(w, 6) for w in waits[:5]}) == 5  # jitter: no two early waits alike
