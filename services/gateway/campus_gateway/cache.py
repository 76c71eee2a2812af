"""Everything the gateway keeps in Redis: profiles, counters, leaderboard, activity, hot posts.

A cached profile is stored as `<state>:<lsn>:<json>`:
- `V` a value; `D` a tombstone (the row was deleted); `S` "stale": read it from its service.
- `lsn` is the WAL position of the change that wrote the entry (0 when the gateway filled it
  from a service's API), so the `cache` projection never lets an older change overwrite a newer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from campus_gateway.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["user", "group"]
# One Redis command an event causes: (command, key, *arguments).
Op = tuple[Any, ...]
State = Literal["V", "D", "S"]
# The single Redis or a Redis Cluster (CAMPUS_REDIS_CLUSTER, the cluster topology).
RedisClient = Redis | RedisCluster

HITS = "stats:cache:hits"
MISSES = "stats:cache:misses"
LEADERBOARD = "leaderboard:points"
HOT_POSTS = "hot:posts"
PREFIXES = ("user", "group", "leaderboard", "recent", "hot", "processed", "ratelimit", "stats")

# The projection's write on Redis Cluster (one key per script): only a change newer than the
# entry's replaces it.
_PUT_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local lsn = tonumber(string.match(cur, '^%a:(%d+):'))
  if lsn and lsn >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# The gateway's own mark after a write it forwarded: keep the entry's LSN watermark, and keep
# the entry itself when it already holds exactly the new value (the projection was faster).
_MARK = """
local cur = redis.call('GET', KEYS[1])
local lsn = '0'
if cur then
  lsn = string.match(cur, '^%a:(%d+):') or '0'
  if ARGV[3] ~= '' and cur == 'V:' .. lsn .. ':' .. ARGV[3] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. lsn .. ':', 'EX', ARGV[2])
return 1
"""

# Redis Cluster: a domain event's effects on one key, once: the dedupe marker and the effects in
# one atomic step.
# KEYS[1] is the marker; ARGV[2] a JSON list of [command, key index, args...].
_APPLY_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for _, op in ipairs(cjson.decode(ARGV[2])) do
  local args = {op[1], KEYS[op[2]]}
  for i = 3, #op do args[#args + 1] = op[i] end
  redis.call(unpack(args))
end
return 1
"""


# A projection batch in one script call (single Redis; see `RedisBatch`): its steps in order,
# each a profile write only if newer ("P"), an event's effects only if never applied ("O", the
# marker and the effects in one step, so a redelivered or repeated event is skipped even within
# the batch), or a plain command ("R"). KEYS: every key the batch names; ARGV[1] the markers'
# TTL, ARGV[2] the steps as JSON, keys given by their index in KEYS.
_APPLY_BATCH = """
local applied = 0
local function run(op)
  local args = {op[1], KEYS[op[2]]}
  for i = 3, #op do args[#args + 1] = op[i] end
  redis.call(unpack(args))
end
for _, step in ipairs(cjson.decode(ARGV[2])) do
  local kind = step[1]
  if kind == 'P' then
    local cur = redis.call('GET', KEYS[step[2]])
    local lsn = cur and tonumber(string.match(cur, '^%a:(%d+):'))
    if not (lsn and lsn >= tonumber(step[3])) then
      redis.call('SET', KEYS[step[2]], step[4], 'EX', step[5])
      applied = applied + 1
    end
  elseif kind == 'O' then
    if redis.call('SET', KEYS[step[2]], '1', 'NX', 'EX', ARGV[1]) then
      for _, op in ipairs(step[3]) do run(op) end
      applied = applied + 1
    end
  else
    run(step[2])
    applied = applied + 1
  end
end
return applied
"""


class Lua:
    """A script queued on a pipeline as EVALSHA, without redis-py's Script objects: those make
    every pipeline execute ask SCRIPT EXISTS first, a second round trip on the hot path.

    Every multi-key script here takes keys that share one hash tag `{...}`, so it also runs on
    Redis Cluster (all of a script's keys must live in one slot)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        # Through execute_command: redis-py's cluster pipeline refuses its evalsha() method
        # ("blocked when running redis in cluster mode"), yet routes an EVALSHA command by its
        # keys like any other; a replica promoted without the script answers NOSCRIPT, which
        # the caller handles by loading the scripts and running the pipeline again.
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


# LTRIM only caps a list, and after the last LPUSH of a batch it leaves the list exactly as
# one after each push would (the newest N entries): it runs once per list, at the end of the
# batch, instead of once per event. (ZREMRANGEBYRANK on hot posts stays per event: a post
# capped out early must not take a later boost of the same batch.)
_CAPS = frozenset({"LTRIM"})


@dataclass(slots=True)
class RedisBatch:
    """What one projection batch does to Redis, in order; `Cache.apply_batch` sends it."""

    # ("P", key, entry, lsn, ttl) | ("O", event id, ops) | ("R", op)
    _steps: list[tuple[Any, ...]] = field(default_factory=list)
    # (command, key) → the cap to run once after every step
    _caps: dict[tuple[str, str], Op] = field(default_factory=dict)

    def put_if_newer(self, key: str, entry: bytes, lsn: int, ttl: int) -> None:
        """A profile write that only a change newer than the entry's makes."""
        self._steps.append(("P", key, entry, lsn, ttl))

    def apply_once(self, event_id: str, ops: Sequence[Op]) -> None:
        """An event's effects, made only if the event was never applied before."""
        kept: list[Op] = []
        for op in ops:
            if op[0] in _CAPS:
                self._caps[(op[0], op[1])] = op
            else:
                kept.append(op)
        self._steps.append(("O", event_id, kept))

    def run(self, op: Op) -> None:
        """A command made as it is (idempotent by itself)."""
        self._steps.append(("R", op))

    @property
    def steps(self) -> list[tuple[Any, ...]]:
        """Every step in order, the caps last."""
        return [*self._steps, *(("R", op) for op in self._caps.values())]

    def __len__(self) -> int:
        return len(self._steps) + len(self._caps)


def batch_script_args(batch: RedisBatch, processed_ttl: int) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of `_APPLY_BATCH` for a batch: each key once, steps naming keys by index."""
    index: dict[str, int] = {}

    def key(name: str) -> int:
        # Lua's KEYS are 1-based.
        return index.setdefault(name, len(index) + 1)

    def op(command: Any, name: str, *args: Any) -> list[Any]:
        return [command, key(name), *(str(a) for a in args)]

    steps: list[list[Any]] = []
    for kind, *rest in batch.steps:
        if kind == "P":
            name, entry, lsn, ttl = rest
            steps.append(["P", key(name), str(lsn), entry.decode(), str(ttl)])
        elif kind == "O":
            event_id, ops = rest
            steps.append(["O", key(processed_key(event_id)), [op(*o) for o in ops]])
        else:
            steps.append(["R", op(*rest[0])])
    return list(index), [processed_ttl, orjson.dumps(steps)]


class CacheUnavailableError(Exception):
    """Redis is down (or was moments ago); callers fall back or answer 503."""


@dataclass(frozen=True, slots=True)
class Entry:
    state: State
    lsn: int
    data: bytes

    @property
    def usable(self) -> bool:
        """Whether the entry answers the read (a value or a tombstone) without the service."""
        return self.state != "S"


def encode_entry(state: State, lsn: int, data: bytes = b"") -> bytes:
    """The stored form of a profile entry."""
    return b"%s:%d:%s" % (state.encode(), lsn, data)


def decode_entry(raw: bytes | None) -> Entry | None:
    """Parse a stored entry; anything unrecognisable counts as absent."""
    if not raw:
        return None
    state, _, rest = raw.partition(b":")
    lsn, sep, data = rest.partition(b":")
    if state not in (b"V", b"D", b"S") or not sep or not lsn.isdigit():
        return None
    return Entry(state.decode(), int(lsn), data)  # type: ignore[arg-type]


def profile_key(kind: Kind, entity_id: int | str) -> str:
    return f"{kind}:{entity_id}"


def activity_key(group_id: int | str) -> str:
    return f"recent:group:{group_id}"


def processed_key(event_id: str, key: str | None = None) -> str:
    """The marker that an event was applied (on Redis Cluster: applied to `key`, same slot)."""
    return f"processed:{event_id}" if key is None else f"processed:{event_id}:{{{key}}}"


def _entry_time(entry: Any) -> datetime:
    try:
        at = datetime.fromisoformat(entry["at"])
    except (KeyError, TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def new_redis(settings: Settings) -> RedisClient:
    """A pooled client that fails fast: a down Redis must not slow every request down."""
    if settings.redis_cluster:
        # Discovers every node from this one; on a master's failure it refreshes the slot map
        # (MOVED / connection errors) and finds the promoted replica.
        return RedisCluster(
            **settings.redis_options(settings.redis_password),
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,
        )
    return Redis(
        **settings.redis_options(settings.redis_password),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1),
        max_connections=settings.redis_max_connections,
        health_check_interval=30,
    )


class Cache:
    """Redis behind a small circuit breaker: after a failure, calls fail at once for a moment."""

    def __init__(self, redis: RedisClient, settings: Settings, *, cool_down_s: float = 1.0) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.ttl = settings.cache_ttl_s
        self.stale_ttl = settings.cache_stale_ttl_s
        self.processed_ttl = settings.processed_event_ttl_s
        self.cool_down_s = cool_down_s
        self._down_until = 0.0
        self._lua: dict[str, Lua] = {}
        # Hits and misses are counted here and added to Redis by the next read's pipeline, in
        # the same round trip (a script counting them beside the entries would span slots).
        self._hits = 0
        self._misses = 0
        self._mark = redis.register_script(_MARK)

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call; a failure raises CacheUnavailableError and starts a cool-down."""
        if time.monotonic() < self._down_until:
            raise CacheUnavailableError("redis is unavailable")
        try:
            return await call()
        except (RedisError, OSError) as exc:
            if time.monotonic() >= self._down_until:
                log.warning("redis unavailable: %r", exc)
            self._down_until = time.monotonic() + self.cool_down_s
            raise CacheUnavailableError("redis is unavailable") from exc

    # profiles ------------------------------------------------------------------------------

    def lua(self, source: str) -> Lua:
        """A script to queue on `pipelined` pipelines (loaded again if Redis lost it)."""
        script = self._lua.setdefault(source, Lua(source))
        return script

    async def pipelined(self, queue: Callable[[Any], object]) -> list[Any]:
        """Run the commands `queue` puts on one pipeline: one round trip, guarded. Scripts are
        sent by SHA; after a Redis restart (NOSCRIPT) they are loaded and the pipeline re-run.
        """

        async def run() -> list[Any]:
            for attempt in range(2):
                async with self.redis.pipeline(transaction=False) as pipe:
                    queue(pipe)
                    results: list[Any] = await pipe.execute(raise_on_error=False)
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                    for script in self._lua.values():
                        await self.redis.script_load(script.source)
                    continue
                for r in results:
                    if isinstance(r, Exception):
                        raise r
                return results
            raise AssertionError("unreachable")

        return await self.guarded(run)

    def queue_entries(self, pipe: Any, kind: Kind, ids: Sequence[int]) -> None:
        """Queue the reads of `ids` (one GET each: an MGET would span slots on a cluster), and
        the hit/miss counts gathered since the last read."""
        hits, misses, self._hits, self._misses = self._hits, self._misses, 0, 0
        if hits:
            pipe.incrby(HITS, hits)
        if misses:
            pipe.incrby(MISSES, misses)
        for entity_id in ids:
            pipe.get(profile_key(kind, entity_id))

    def take_entries(self, raw: Sequence[Any]) -> list[Entry | None]:
        """The entries from `queue_entries`' results (the last len(ids) of them), counted."""
        entries = [decode_entry(v) for v in raw]
        hits = sum(1 for e in entries if e is not None and e.usable)
        self._hits += hits
        self._misses += len(entries) - hits
        return entries

    async def get_entries(self, kind: Kind, ids: Sequence[int]) -> list[Entry | None]:
        """Entries for `ids` in one round trip."""
        if not ids:
            return []
        results = await self.pipelined(lambda pipe: self.queue_entries(pipe, kind, ids))
        return self.take_entries(results[-len(ids) :])

    async def fill(self, kind: Kind, items: Iterable[tuple[int, bytes]]) -> None:
        """Cache-aside fill from a service's answer; never replaces what is there (SET NX)."""
        items = list(items)
        if not items:
            return

        async def run() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entity_id, data in items:
                    pipe.set(
                        profile_key(kind, entity_id),
                        encode_entry("V", 0, data),
                        ex=self.ttl,
                        nx=True,
                    )
                await pipe.execute()

        await self.guarded(run)

    async def mark(self, kind: Kind, entity_id: int, state: State, *, unless: bytes = b"") -> None:
        """After a forwarded write: bypass the cache until the projection catches up."""
        ttl = self.ttl if state == "D" else self.stale_ttl
        key = profile_key(kind, entity_id)
        await self.guarded(lambda: self._mark(keys=[key], args=[state, ttl, unless]))

    def put_if_newer(self, pipe: Any, key: str, entry: bytes, lsn: int, ttl: int) -> None:
        """Queue the projection's order-safe write on a Redis Cluster pipeline."""
        # A cluster pipeline cannot load a script on the node it lands on (nor on a replica
        # promoted since): EVAL sends the script itself.
        pipe.eval(_PUT_IF_NEWER, 1, key, lsn, entry, ttl)

    def apply_once(self, pipe: Any, event_id: str, ops: Sequence[Op]) -> None:
        """Queue an event's effects on a Redis Cluster pipeline: one script per key, its marker
        hash-tagged into the key's slot. Each key still gets the event once; a crash between
        keys leaves the rest to the redelivery."""
        by_key: dict[str, list[list[Any]]] = {}
        for command, key, *args in ops:
            by_key.setdefault(key, []).append([command, 2, *(str(a) for a in args)])
        for key, encoded in by_key.items():
            marker = processed_key(event_id, key)
            pipe.eval(_APPLY_ONCE, 2, marker, key, self.processed_ttl, orjson.dumps(encoded))

    async def apply_batch(self, batch: RedisBatch) -> int:
        """Send a projection batch in one round trip: one script call on a single Redis; on
        Redis Cluster (a script's keys must share a slot) one pipeline of one-slot scripts.
        Returns how many steps changed something (single Redis; the step count on a cluster)."""
        if not batch:
            return 0
        if self.cluster:
            async with self.redis.pipeline(transaction=False) as pipe:
                for kind, *rest in batch.steps:
                    if kind == "P":
                        self.put_if_newer(pipe, *rest)
                    elif kind == "O":
                        self.apply_once(pipe, *rest)
                    else:
                        pipe.execute_command(*rest[0])
                await pipe.execute()
            return len(batch)
        keys, args = batch_script_args(batch, self.processed_ttl)
        script = self.lua(_APPLY_BATCH)
        try:
            applied = await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted Redis lost its script cache
            await self.redis.script_load(script.source)
            applied = await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        return int(applied)

    # leaderboard, activity, hot posts ----------------------------------------------------

    @staticmethod
    def queue_leaderboard(pipe: Any, limit: int) -> None:
        """Queue the read of the top `limit` (for a pipeline that also counts the request)."""
        pipe.zrevrange(LEADERBOARD, 0, limit - 1, withscores=True)

    @staticmethod
    def take_leaderboard(rows: list[tuple[bytes, float]]) -> list[tuple[int, float]]:
        return [(int(member), score) for member, score in rows]

    async def activity(self, group_id: int, limit: int) -> list[Any]:
        """Newest first. Entries arrive by several topics (CDC is slower than the documents
        relay), so the list holds them in arrival order and they are sorted here by time."""
        rows = await self.guarded(lambda: self.redis.lrange(activity_key(group_id), 0, -1))
        entries = [orjson.loads(r) for r in rows]
        entries.sort(key=_entry_time, reverse=True)
        return entries[:limit]

    async def hot_posts(self, limit: int) -> list[tuple[str, float]]:
        rows = await self._top(HOT_POSTS, limit)
        return [(member.decode(), score) for member, score in rows]

    async def _top(self, key: str, limit: int) -> list[tuple[bytes, float]]:
        rows = await self.guarded(lambda: self.redis.zrevrange(key, 0, limit - 1, withscores=True))
        return cast(list[tuple[bytes, float]], rows)

    # status ---------------------------------------------------------------------------------

    async def status(self, *, max_scan: int = 200_000) -> dict[str, Any]:
        """Hit ratio, keys per prefix (SCAN), memory (INFO memory)."""

        async def run() -> dict[str, Any]:
            if isinstance(self.redis, RedisCluster):  # two keys, two slots
                hits, misses = await self.redis.mget_nonatomic([HITS, MISSES])
            else:
                hits, misses = await self.redis.mget(HITS, MISSES)
            per_prefix: dict[str, int] = {}
            scanned = 0
            complete = True
            async for key in self.redis.scan_iter(count=1000):
                prefix = key.split(b":", 1)[0].decode(errors="replace")
                per_prefix[prefix] = per_prefix.get(prefix, 0) + 1
                scanned += 1
                if scanned >= max_scan:
                    complete = False
                    break
            memory = await self.redis.info("memory")
            h, m = int(hits or 0), int(misses or 0)
            return {
                "hits": h,
                "misses": m,
                "hit_ratio": round(h / (h + m), 4) if h + m else None,
                "keys": {
                    "total": await self.redis.dbsize(),
                    "by_prefix": per_prefix,
                    "complete": complete,
                },
                "memory": {
                    "used_bytes": memory.get("used_memory"),
                    "used_human": memory.get("used_memory_human"),
                    "peak_human": memory.get("used_memory_peak_human"),
                    "max_bytes": memory.get("maxmemory"),
                    "policy": memory.get("maxmemory_policy"),
                },
            }

        return await self.guarded(run)
