"""Every Redis script the gateway sends touches keys of one cluster slot (Redis Cluster refuses
a script whose keys span slots with CROSSSLOT). No Redis: the queued commands are inspected."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from campus_gateway.cache import HOT_POSTS, LEADERBOARD, Cache, activity_key, profile_key
from campus_gateway.config import Settings
from campus_gateway.ratelimit import RateLimiter

pytestmark = pytest.mark.unit


class Recorder:
    """Stands in for a pipeline: keeps each command with the keys it names."""

    def __init__(self) -> None:
        self.scripts: list[list[str]] = []
        self.commands: list[tuple[str, str]] = []

    def execute_command(self, name: str, _sha: str, numkeys: int, *rest: Any) -> None:
        # Scripts go as EVALSHA commands: the cluster pipeline refuses its evalsha() method.
        assert name == "EVALSHA"
        self.scripts.append([str(k) for k in rest[:numkeys]])

    def eval(self, _source: str, numkeys: int, *rest: Any) -> None:
        self.scripts.append([str(k) for k in rest[:numkeys]])

    def get(self, key: str) -> None:
        self.commands.append(("GET", key))

    def incrby(self, key: str, _n: int) -> None:
        self.commands.append(("INCRBY", key))


def settings() -> Settings:
    return Settings(
        redis_password=SecretStr("x"),
        jwt_secret=SecretStr("y" * 32),
        admin_email="admin@x.edu",
        admin_password=SecretStr("z" * 12),
    )


def one_slot(keys: list[str]) -> bool:
    return len({key_slot(k.encode()) for k in keys}) == 1


def limiter() -> RateLimiter:
    # Never connects: a client is only opened on the first command.
    return RateLimiter(Cache(Redis(), settings()), window_s=60, per_address=100, per_user=100)


def test_a_requests_rate_limit_scripts_each_touch_one_slot() -> None:
    pipe = Recorder()
    assert limiter().queue(pipe, address="203.0.113.7", user_id=42) == 2
    assert len(pipe.scripts) == 2
    assert all(one_slot(keys) and len(keys) == 2 for keys in pipe.scripts), pipe.scripts


async def test_a_logins_scripts_each_touch_one_slot() -> None:
    pipe = Recorder()
    rl = limiter()

    async def pipelined(queue: Any) -> list[Any]:
        queue(pipe)
        return [0, 0]

    rl.cache.pipelined = pipelined  # type: ignore[method-assign]
    assert (await rl.check_login(address="203.0.113.7", account="a@x.edu")).allowed
    assert [len(k) for k in pipe.scripts] == [2, 1]
    assert all(one_slot(keys) for keys in pipe.scripts), pipe.scripts


def test_a_cached_read_never_sends_a_multi_key_command() -> None:
    cache = Cache(Redis(), settings())
    cache.take_entries([None, b"V:1:{}"])  # one miss, one hit, added by the next read
    pipe = Recorder()
    cache.queue_entries(pipe, "user", [1, 2, 3])
    assert pipe.scripts == []
    assert [c for c, _ in pipe.commands] == ["INCRBY", "INCRBY", "GET", "GET", "GET"]
    assert pipe.commands[-1] == ("GET", profile_key("user", 3))


def test_on_a_cluster_an_event_is_applied_once_per_key_within_its_slot() -> None:
    cache = Cache(RedisCluster(host="127.0.0.1", port=1), settings())
    ops = [
        ("ZINCRBY", LEADERBOARD, 10, "7"),
        ("ZADD", HOT_POSTS, 1.0, "p1"),
        ("LPUSH", activity_key(3), "{}"),
        ("LTRIM", activity_key(3), 0, 49),
    ]
    pipe = Recorder()
    cache.apply_once(pipe, "event-1", ops)
    # One script per key (the activity list's two commands in one), marker and key in one slot.
    assert sorted(keys[1] for keys in pipe.scripts) == sorted(
        [LEADERBOARD, HOT_POSTS, activity_key(3)]
    )
    assert all(one_slot(keys) for keys in pipe.scripts), pipe.scripts
    markers = {keys[0] for keys in pipe.scripts}
    assert len(markers) == 3 and all(m.startswith("processed:event-1:") for m in markers)
