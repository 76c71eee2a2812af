"""Fixed-window rate limits per client address and per user, counted atomically in Redis."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from campus_gateway.cache import Cache, CacheUnavailableError, RedisClient

log = logging.getLogger(__name__)

# KEYS come in pairs (counter, override); ARGV[1] is the default window, ARGV[1 + n] the default
# limit of pair n. An override holds "<limit>:<window>"; a limit of 0 means unlimited.
# Returns {seconds until the caller may retry (0 = allowed), requests left in the tightest window}.
_LIMIT = """
local retry, left = 0, -1
for i = 1, #KEYS, 2 do
  local limit, window = tonumber(ARGV[(i + 1) / 2 + 1]), tonumber(ARGV[1])
  local o = redis.call('GET', KEYS[i + 1])
  if o then
    local ol, ow = string.match(o, '^(%d+):(%d+)$')
    if ol then limit, window = tonumber(ol), tonumber(ow) end
  end
  if limit > 0 then
    local n = redis.call('INCR', KEYS[i])
    local ttl = redis.call('TTL', KEYS[i])
    if n == 1 or ttl < 0 then
      redis.call('EXPIRE', KEYS[i], window)
      ttl = window
    end
    if n > limit then retry = math.max(retry, ttl, 1) end
    if left < 0 or limit - n < left then left = math.max(limit - n, 0) end
  end
end
return {retry, left}
"""


# Logins. KEYS: the address's login counter, the address's override, the account's failures.
# ARGV: window, per-address limit, failures allowed per account. Every attempt counts against
# the address (an override of the address applies to its logins too); only failures count
# against the account (`_FAILED`), so its owner's own logins never lock it.
# Returns the seconds until the caller may retry (0 = allowed).
_LOGIN = """
local retry = 0
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[1])
local o = redis.call('GET', KEYS[2])
if o then
  local ol, ow = string.match(o, '^(%d+):(%d+)$')
  if ol then limit, window = tonumber(ol), tonumber(ow) end
end
if limit > 0 then
  local n = redis.call('INCR', KEYS[1])
  local ttl = redis.call('TTL', KEYS[1])
  if n == 1 or ttl < 0 then
    redis.call('EXPIRE', KEYS[1], window)
    ttl = window
  end
  if n > limit then retry = math.max(ttl, 1) end
end
local failures = tonumber(redis.call('GET', KEYS[3]) or '0')
if failures >= tonumber(ARGV[3]) then
  retry = math.max(retry, redis.call('TTL', KEYS[3]), 1)
end
return retry
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


# The subject is the hash tag: a counter and its override (read by one script) share a slot
# on Redis Cluster.
def counter_key(scope: str, subject: str) -> str:
    return f"ratelimit:{scope}:{{{subject}}}"


def override_key(scope: str, subject: str) -> str:
    return f"ratelimit:override:{scope}:{{{subject}}}"


def account_key(account: str) -> str:
    # Hashed: the limiter's keys should not list who has been trying to log in.
    digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
    return f"ratelimit:login-account:{digest}"


async def _get_with_ttl(redis: RedisClient, key: str) -> tuple[int, int]:
    """A counter's value (0 when absent) and its seconds to live."""
    value, ttl = await redis.get(key), await redis.ttl(key)
    return int(value or 0), int(ttl)


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
        self._script = cache.redis.register_script(_LIMIT)
        self._login = cache.redis.register_script(_LOGIN)
        self._failed = cache.redis.register_script(_FAILED)

    async def check_login(self, *, address: str, account: str) -> Verdict:
        """Count one login attempt. Fails closed: raises CacheUnavailableError while Redis is
        down, because without the counters nothing would bound password guessing."""
        keys = [
            counter_key("login-addr", address),
            override_key("addr", address),
            account_key(account),
        ]
        if self.cache.cluster:
            return await self._check_login_cluster(keys)
        args = [self.login.window_s, self.login.per_address, self.login.failures_per_account]
        retry = await self.cache.guarded(lambda: self._login(keys=keys, args=args))
        return Verdict(int(retry), -1)

    async def _check_login_cluster(self, keys: list[str]) -> Verdict:
        """Redis Cluster: the address's pair (one slot) through the request limiter's script,
        then the account's failures (another slot), read only."""
        redis = self.cache.redis
        pair, account = keys[:2], keys[2]
        window, limit = self.login.window_s, self.login.per_address
        retry, _ = await self.cache.guarded(
            lambda: redis.eval(_LIMIT, len(pair), *pair, window, limit)
        )
        failures, ttl = await self.cache.guarded(lambda: _get_with_ttl(redis, account))
        if failures >= self.login.failures_per_account:
            retry = max(int(retry), ttl, 1)
        return Verdict(int(retry), -1)

    async def login_failed(self, *, account: str) -> None:
        """Record a wrong password for the account (its lockout window starts at the first)."""
        key, lockout = account_key(account), self.login.lockout_s
        await self.cache.guarded(lambda: self._failed(keys=[key], args=[lockout]))

    async def check(self, *, address: str, user_id: int | None) -> Verdict:
        """Count one request; fails open (allowed) while Redis is down."""
        keys = [counter_key("addr", address), override_key("addr", address)]
        limits = [self.per_address]
        if user_id is not None:
            keys += [counter_key("user", str(user_id)), override_key("user", str(user_id))]
            limits.append(self.per_user)
        try:
            if self.cache.cluster:
                retry, left = await self._check_cluster(keys, limits)
            else:
                retry, left = await self.cache.guarded(
                    lambda: self._script(keys=keys, args=[self.window_s, *limits])
                )
        except CacheUnavailableError:
            # Refusing every request because the limiter's store is down would turn a cache
            # outage into a full outage.
            return Verdict(0, -1)
        return Verdict(int(retry), int(left))

    async def _check_cluster(self, keys: list[str], limits: list[int]) -> tuple[int, int]:
        """Redis Cluster: one script call per (counter, override) pair, i.e. per slot; the
        tightest answer wins, as in the single script."""
        redis = self.cache.redis
        retry, left = 0, -1
        for n, limit in enumerate(limits):
            pair = keys[2 * n : 2 * n + 2]
            r, lft = await self.cache.guarded(
                lambda pair=pair, limit=limit: redis.eval(  # type: ignore[misc]
                    _LIMIT, len(pair), *pair, self.window_s, limit
                )
            )
            retry = max(retry, int(r))
            if int(lft) >= 0 and (left < 0 or int(lft) < left):
                left = int(lft)
        return retry, left

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
