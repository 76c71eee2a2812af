"""Fixed-window rate limits per client address and per user, counted atomically in Redis."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from campus_gateway.cache import Cache, CacheUnavailableError

log = logging.getLogger(__name__)

# One subject's window. KEYS: its counter and its override (one hash tag, so one cluster slot);
# ARGV: the default window and limit. An override holds "<limit>:<window>"; a limit of 0 means
# unlimited. Returns {seconds until the caller may retry (0 = allowed), requests left (-1 = no
# limit)}.
_LIMIT = """
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[1])
local o = redis.call('GET', KEYS[2])
if o then
  local ol, ow = string.match(o, '^(%d+):(%d+)$')
  if ol then limit, window = tonumber(ol), tonumber(ow) end
end
if limit <= 0 then return {0, -1} end
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], window)
  ttl = window
end
local retry = 0
if n > limit then retry = math.max(ttl, 1) end
return {retry, math.max(limit - n, 0)}
"""


# Logins, the address's side. KEYS: the address's login counter, the address's override (one
# hash tag). ARGV: window, per-address limit. Every attempt counts against the address (an
# override of the address applies to its logins too). Returns the seconds until the caller may
# retry (0 = allowed).
_LOGIN = """
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[1])
local o = redis.call('GET', KEYS[2])
if o then
  local ol, ow = string.match(o, '^(%d+):(%d+)$')
  if ol then limit, window = tonumber(ol), tonumber(ow) end
end
if limit <= 0 then return 0 end
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], window)
  ttl = window
end
if n > limit then return math.max(ttl, 1) end
return 0
"""
# Logins, the account's side: only failures count against it (`_FAILED`), so its owner's own
# logins never lock it. KEYS: the account's failures; ARGV: failures allowed. Returns the
# seconds until the caller may retry (0 = allowed).
_LOCKED = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then return math.max(redis.call('TTL', KEYS[1]), 1) end
return 0
"""
_FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    retry_after: int  # 0 when the request may go ahead
    remaining: int  # -1 when no limit applies

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0


# A subject's counters and its override share the hash tag `{<scope>:<subject>}`.
def counter_key(scope: str, subject: str) -> str:
    return f"ratelimit:{{{scope}:{subject}}}"


def override_key(scope: str, subject: str) -> str:
    return f"ratelimit:override:{{{scope}:{subject}}}"


def login_key(address: str) -> str:
    """The address's login attempts, in the slot of its override (`override_key("addr", …)`)."""
    return f"ratelimit:login:{{addr:{address}}}"


def account_key(account: str) -> str:
    # Hashed: the limiter's keys should not list who has been trying to log in.
    digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
    return f"ratelimit:login-account:{digest}"


# Refusing every request because the limiter's store is down would turn a cache outage into a
# full outage: while Redis is down, requests are let through.
OPEN = Verdict(0, -1)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    window_s: int = 60
    per_address: int = 300
    failures_per_account: int = 10
    lockout_s: int = 900


class RateLimiter:
    def __init__(
        self,
        cache: Cache,
        *,
        window_s: int,
        per_address: int,
        per_user: int,
        login: LoginLimits | None = None,
    ) -> None:
        self.cache = cache
        self.window_s = window_s
        self.per_address = per_address
        self.per_user = per_user
        self.login = login or LoginLimits()
        self._limit = cache.lua(_LIMIT)
        self._login = cache.lua(_LOGIN)
        self._locked = cache.lua(_LOCKED)
        self._failed = cache.lua(_FAILED)

    async def check_login(self, *, address: str, account: str) -> Verdict:
        """Count one login attempt. Fails closed: raises CacheUnavailableError while Redis is
        down, because without the counters nothing would bound password guessing."""
        address_keys = [login_key(address), override_key("addr", address)]

        def queue(pipe: Any) -> None:
            self._login.queue(pipe, address_keys, [self.login.window_s, self.login.per_address])
            self._locked.queue(pipe, [account_key(account)], [self.login.failures_per_account])

        by_address, by_account = await self.cache.pipelined(queue)
        return Verdict(max(int(by_address), int(by_account)), -1)

    async def login_failed(self, *, account: str) -> None:
        """Record a wrong password for the account (its lockout window starts at the first)."""
        key, lockout = account_key(account), self.login.lockout_s
        await self.cache.pipelined(lambda pipe: self._failed.queue(pipe, [key], [lockout]))

    def queue(self, pipe: Any, *, address: str, user_id: int | None) -> int:
        """Queue the count of one request (per address, and per user with a token) on a
        pipeline; returns how many results `verdict` then takes from its start."""
        self._limit.queue(
            pipe,
            [counter_key("addr", address), override_key("addr", address)],
            [self.window_s, self.per_address],
        )
        if user_id is None:
            return 1
        subject = str(user_id)
        self._limit.queue(
            pipe,
            [counter_key("user", subject), override_key("user", subject)],
            [self.window_s, self.per_user],
        )
        return 2

    @staticmethod
    def verdict(results: Sequence[Any]) -> Verdict:
        """The tightest of the windows counted by `queue`."""
        retry = max(int(r[0]) for r in results)
        limited = [int(r[1]) for r in results if int(r[1]) >= 0]
        return Verdict(retry, min(limited) if limited else -1)

    async def check(self, *, address: str, user_id: int | None) -> Verdict:
        """Count one request; fails open (allowed) while Redis is down."""
        try:
            results = await self.cache.pipelined(
                lambda pipe: self.queue(pipe, address=address, user_id=user_id)
            )
        except CacheUnavailableError:
            return OPEN
        return self.verdict(results)

    async def set_override(
        self, *, scope: str, subject: str, limit: int, window_s: int, ttl_s: int
    ) -> None:
        """Give one user or address its own limit for a while (and start a fresh window)."""
        redis = self.cache.redis

        async def run() -> None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(override_key(scope, subject), f"{limit}:{window_s}", ex=ttl_s)
                pipe.delete(counter_key(scope, subject))
                await pipe.execute()

        await self.cache.guarded(run)

    async def clear_override(self, *, scope: str, subject: str) -> None:
        await self.cache.guarded(
            lambda: self.cache.redis.delete(
                override_key(scope, subject), counter_key(scope, subject)
            )
        )
