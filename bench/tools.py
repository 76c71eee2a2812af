"""Load generation and measurement helpers: a drift-free pacer, visibility bookkeeping, and
the external load tools (wrk, redis-benchmark) with their output parsed."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Pacer:
    """Send times for a fixed rate: the n-th is due at start + n / rate, so a late send does
    not push every later one back (no drift), and a backlog is sent as fast as possible."""

    def __init__(self, rate: float, start: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.start = start

    def due(self, n: int) -> float:
        return self.start + n / self.rate

    def count(self, duration_s: float) -> int:
        """How many sends fit in `duration_s`."""
        return int(duration_s * self.rate)


@dataclass
class PacedRun:
    sent: int = 0
    late_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


async def paced(
    rate: float,
    duration_s: float,
    send: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
) -> PacedRun:
    """Call send(n) at `rate` per second for `duration_s`, at most `concurrency` in flight."""
    run = PacedRun()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    pacer = Pacer(rate, time.monotonic())

    async def one(n: int) -> None:
        try:
            await send(n)
        finally:
            slots.release()

    for n in range(pacer.count(duration_s)):
        delay = pacer.due(n) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        run.late_s.append(max(time.monotonic() - pacer.due(n), 0.0))
        task = asyncio.create_task(one(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        run.sent += 1
    if tasks:
        await asyncio.gather(*tasks)
    run.elapsed_s = time.monotonic() - pacer.start
    return run


@dataclass(frozen=True, slots=True)
class Write:
    key: int
    seq: int
    committed_at: float


class Visibility:
    """Commit → visible bookkeeping for one store.

    Writes to the same key are numbered in commit order. A store that keeps only the newest
    value per key (Neo4j, Redis) may never show an older value a newer one overwrote quickly:
    there, seeing write n also makes every earlier write to that key visible (`cumulative`).
    A store that keeps every change (the Kafka topic, the events table) resolves one write.
    A sighting may beat the writer's own bookkeeping (both run on one event loop): it is kept
    and settles the write as soon as the writer records it.
    """

    def __init__(self, *, cumulative: bool) -> None:
        self.cumulative = cumulative
        self.pending: dict[int, dict[int, Write]] = {}
        self.latencies: list[float] = []
        self._last_seq: dict[int, int] = {}
        self._early: dict[int, list[tuple[int, float]]] = {}

    def committed(self, write: Write) -> None:
        self._last_seq[write.key] = max(write.seq, self._last_seq.get(write.key, -1))
        for seq, at in self._early.get(write.key, []):
            if seq == write.seq or (self.cumulative and seq > write.seq):
                self.latencies.append(max(at - write.committed_at, 0.0))
                return
        self.pending.setdefault(write.key, {})[write.seq] = write

    def seen(self, key: int, seq: int, at: float) -> int:
        """Record that the store shows write `seq` of `key` at time `at`; returns how many
        pending writes that resolved."""
        if seq > self._last_seq.get(key, -1):
            self._early.setdefault(key, []).append((seq, at))
            return 0
        waiting = self.pending.get(key)
        if not waiting:
            return 0
        if self.cumulative:
            done = [s for s in waiting if s <= seq]
        else:
            done = [seq] if seq in waiting else []
        for s in done:
            self.latencies.append(max(at - waiting.pop(s).committed_at, 0.0))
        if not waiting:
            del self.pending[key]
        return len(done)

    def waiting_keys(self) -> list[int]:
        return list(self.pending)

    def oldest_pending(self) -> float | None:
        times = [w.committed_at for ws in self.pending.values() for w in ws.values()]
        return min(times) if times else None

    @property
    def unresolved(self) -> int:
        return sum(len(ws) for ws in self.pending.values())


def recovery_s(samples: Sequence[tuple[float, bool]], *, load_end: float) -> float | None:
    """Seconds from `load_end` to the first sample at or after it that is steady (and every
    later one too); None when the samples never settle."""
    after = [(t, ok) for t, ok in samples if t >= load_end]
    settled: float | None = None
    for t, ok in after:
        if ok and settled is None:
            settled = t
        elif not ok:
            settled = None
    return None if settled is None else round(settled - load_end, 3)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def notes(figures: Sequence[Any], metric: str) -> str:
    """The notes of one metric's figures as a list (the results table has no room for them)."""
    return "\n".join(f"- {f.name}: {f.note}" for f in figures if f.metric == metric and f.note)


# wrk ---------------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    extra: dict[str, int]

    @property
    def ok_per_s(self) -> float:
        """Successful answers per second: a refusal (a 429, a 503) served fast is not a read."""
        if not self.requests:
            return 0.0
        return self.requests_per_s * (1 - self.non_2xx / self.requests)


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(out: str) -> WrkResult:
    """wrk --latency output (plus `BENCH key=value ...` lines a script's done() prints)."""
    pct = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.MULTILINE))
    reqs = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    if not (pct.get("50") and pct.get("99") and reqs and rps):
        raise ValueError(f"unrecognised wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    extra: dict[str, int] = {}
    for line in re.findall(r"^BENCH (.*)$", out, re.MULTILINE):
        for k, v in re.findall(r"(\w+)=(\d+)", line):
            extra[k] = int(v)
    return WrkResult(
        requests=int(reqs[1]),
        requests_per_s=float(rps[1]),
        p50_ms=_ms(pct["50"]),
        p99_ms=_ms(pct["99"]),
        non_2xx=int(non2xx[1]) if non2xx else 0,
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
        extra=extra,
    )


def lua_list(values: Sequence[int | str]) -> str:
    """A Lua table literal."""
    return "{" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "}"


# Counts `X-Cache` outcomes so a run can show how many requests really were hits or misses.
COUNT_CACHE_LUA = """
hits, misses = 0, 0
response = function(status, headers, body)
  local x = headers["X-Cache"] or headers["x-cache"]
  if x == "hit" then hits = hits + 1 elseif x == "miss" then misses = misses + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local h, m = 0, 0
  for _, t in ipairs(threads) do h = h + t:get("hits"); m = m + t:get("misses") end
  io.write(string.format("BENCH hits=%d misses=%d\\n", h, m))
end
"""


def rotate_paths_lua(paths: Sequence[str]) -> str:
    """A wrk script that walks through `paths` in turn, one per request."""
    return f"""
local paths = {lua_list(list(paths))}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i - 1) % #paths + 1])
end
"""


def post_json_lua(body: str, headers: Mapping[str, str] | None = None) -> str:
    """A wrk script that POSTs the same JSON body (and headers) with every request."""

    def quote(text: str) -> str:
        return text.replace("\\", "\\\\").replace("'", "\\'")

    extra = "".join(
        f"wrk.headers['{quote(k)}'] = '{quote(v)}'\n" for k, v in (headers or {}).items()
    )
    return f"""
wrk.method = "POST"
wrk.body = '{quote(body)}'
wrk.headers["Content-Type"] = "application/json"
{extra}"""


async def wrk(
    url: str,
    *,
    duration_s: float,
    connections: int = 64,
    threads: int = 1,
    script: str | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against `url` (loopback only) and parse its report."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError("benchmarks send traffic to the loopback interface only")
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        args = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(int(duration_s), 1)}s",
            f"--timeout={int(timeout_s)}s",
            "--latency",
        ]
        if script is not None:
            path = Path(tmp) / "script.lua"
            path.write_text(script)
            args += ["-s", str(path)]
        proc = await asyncio.create_subprocess_exec(
            *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-500:]}")
    return parse_wrk(out.decode())


# redis-benchmark -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisBenchResult:
    test: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def parse_redis_benchmark_csv(out: str) -> list[RedisBenchResult]:
    """redis-benchmark --csv: a header line, then one line per test."""
    rows = list(csv.DictReader(io.StringIO(out.strip())))
    if not rows or "rps" not in rows[0]:
        raise ValueError(f"unrecognised redis-benchmark output:\n{out}")
    return [
        RedisBenchResult(
            test=r["test"],
            requests_per_s=float(r["rps"]),
            p50_ms=float(r["p50_latency_ms"]),
            p99_ms=float(r["p99_latency_ms"]),
        )
        for r in rows
    ]


async def redis_benchmark(
    *,
    host: str,
    port: int,
    password: str,
    requests: int = 100_000,
    clients: int = 50,
    args: Sequence[str] = (),
) -> RedisBenchResult:
    """Run the real redis-benchmark binary (one test or one custom command) and parse it."""
    if not host.startswith("127.") and host != "localhost":
        raise ValueError("benchmarks send traffic to the loopback interface only")
    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is not installed (Debian package redis-tools)")
    proc = await asyncio.create_subprocess_exec(
        "redis-benchmark",
        "-h",
        host,
        "-p",
        str(port),
        "-a",
        password,
        "-n",
        str(requests),
        "-c",
        str(clients),
        "--csv",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {err.decode()[-500:]}")
    return parse_redis_benchmark_csv(out.decode())[0]
