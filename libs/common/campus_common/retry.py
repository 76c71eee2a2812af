"""The one retry policy: exponential backoff with jitter and a cap, from tenacity.

Every wait-and-try-again in the services goes through `retrying`, and each call names what it
retries on (an exception type or a predicate), so a reader sees at the call site which failures
are waited out and which propagate at once. Jitter keeps the five services and their
projections from hammering a store that just came back in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import tenacity

# Defaults shared by every use: the first wait, and the longest one (a store down for minutes
# is polled every few seconds, never less often).
INITIAL_S = 0.5
CAP_S = 5.0


def backoff(*, initial_s: float = INITIAL_S, cap_s: float = CAP_S) -> tenacity.wait.wait_base:
    """The waits between tries: doubling from `initial_s`, plus up to `initial_s` of jitter,
    never above `cap_s`.

    Also what the synchronous `campus` CLI waits with (tenacity.Retrying), so every retry in
    the project backs off the same way.
    """
    # Jitter in proportion to the first wait: a fixed second of it would swamp the short waits
    # of the gateway's request path (50 ms) and of a projection's store retries (200 ms).
    return tenacity.wait_exponential_jitter(initial=initial_s, max=cap_s, jitter=initial_s)


RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def retrying(
    what: str,
    *,
    on: RetryOn,
    log: logging.Logger,
    stop: asyncio.Event | None = None,
    initial_s: float = INITIAL_S,
    cap_s: float = CAP_S,
    give_up_after_s: float | None = None,
    attempts: int | None = None,
    with_traceback: bool = False,
) -> tenacity.AsyncRetrying:
    """Retry `what` while it fails with `on`; any other failure propagates at once.

    It retries forever unless `give_up_after_s` or `attempts` (tries in all) is set; setting
    `stop` ends the waiting early
    (the wait wakes up) and re-raises the last failure. `with_traceback` logs each failure's
    traceback (for failures nobody expected, such as a crashed consumer loop). Use as
    `async for attempt in retrying(...): with attempt: ...`.
    """
    retry = (
        tenacity.retry_if_exception(on)
        if callable(on) and not isinstance(on, type)
        else tenacity.retry_if_exception_type(on)
    )

    def stopped(state: tenacity.RetryCallState) -> bool:
        if stop is not None and stop.is_set():
            return True
        if attempts is not None and state.attempt_number >= attempts:
            return True
        return give_up_after_s is not None and (state.seconds_since_start or 0) >= give_up_after_s

    async def sleep(seconds: float) -> None:
        # Sleep, but wake as soon as the owner asks to stop.
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (%s: %s); retrying in %.1fs",
            what,
            type(exc).__name__,
            exc,
            wait,
            exc_info=exc if with_traceback else None,
        )

    return tenacity.AsyncRetrying(
        retry=retry,
        wait=backoff(initial_s=initial_s, cap_s=cap_s),
        stop=stopped,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
