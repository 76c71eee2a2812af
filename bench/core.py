"""What every benchmark shares: percentiles, timers, figures, and the report."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The report section naming the topology a run measured (absent before the cluster topology).
TOPOLOGY = "Topology"
# The report section saying how many of the run's modules ran (the report is written after each).
PROGRESS = "Progress"
# The report section naming the tracing sampling the services ran with.
TRACING = "Tracing"
# Every figure of a full run is the median of this many repetitions of its timed phase (the
# setup it measures against, seeding included, runs once); a quick run repeats once.
REPS = 3


def reps(*, quick: bool) -> int:
    """How many times a benchmark repeats each timed phase in this kind of run."""
    return 1 if quick else REPS


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds from samples in seconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


@dataclass
class Figure:
    """One headline number next to its anchor from the same run."""

    metric: str
    name: str
    value: float
    unit: str
    anchor_name: str | None = None
    anchor_value: float | None = None
    target: str | None = None
    met: bool | None = None
    note: str = ""
    # Each repetition's value and anchor value (`value`, `anchor_value`: their medians).
    runs: list[float] = field(default_factory=list)
    anchor_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.anchor_value in (None, 0):
            return None
        return round(self.value / self.anchor_value, 3)

    @classmethod
    def median_of(
        cls,
        metric: str,
        name: str,
        runs: Sequence[float],
        unit: str,
        anchor_name: str | None = None,
        anchor_runs: Sequence[float] | None = None,
        target: str | None = None,
        *,
        met: Callable[[float, float | None], bool] | None = None,
        note: str = "",
        digits: int = 2,
    ) -> Figure:
        """The median of the repetitions `runs` (and of the anchor's), with every run kept;
        `met(value, anchor_value)` judges the medians against the target."""
        if not runs:
            raise ValueError(f"{metric} {name}: no repetition")
        value = round(statistics.median(runs), digits)
        anchor = round(statistics.median(anchor_runs), digits) if anchor_runs else None
        return cls(
            metric,
            name,
            value,
            unit,
            anchor_name,
            anchor,
            target,
            None if met is None else met(value, anchor),
            note,
            [round(r, digits) for r in runs],
            [round(r, digits) for r in anchor_runs or []],
        )

    def spread(self, runs: Sequence[float]) -> str:
        """ " (min .., max .., n=..)" after a median of more than one run, else nothing."""
        if len(runs) < 2:
            return ""
        return f" (min {min(runs):g}, max {max(runs):g}, n={len(runs)})"


@dataclass
class Report:
    """Figures, raw series for plots, and where they were measured."""

    quick: bool
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: dict[str, Any] = field(default_factory=lambda: machine_facts())
    figures: list[Figure] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Other files written beside the report (flame graphs), by name.
    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)

    def to_json(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "started_at": self.started_at,
            "machine": self.machine,
            "figures": [asdict(f) | {"ratio": f.ratio} for f in self.figures],
            "sections": self.sections,
            "errors": self.errors,
        }

    def markdown(self) -> str:
        m = self.machine
        lines = [
            f"# CampusConnect benchmarks — {self.started_at}",
            "",
            f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
            f"{'quick run' if self.quick else 'full run'}. "
            "Ratios are value / anchor from the same run. A value with a range in brackets "
            "is the median of n repetitions.",
            "",
            "| metric | figure | value | anchor | anchor value | ratio | target | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            anchor = f.anchor_name or "—"
            av = "—" if f.anchor_value is None else f"{f.anchor_value:g} {f.unit}"
            av += f.spread(f.anchor_runs) if f.anchor_value is not None else ""
            met = "—" if f.met is None else ("yes" if f.met else "**no**")
            lines.append(
                f"| {f.metric} | {f.name} | {f.value:g} {f.unit}{f.spread(f.runs)} | "
                f"{anchor} | {av} | "
                f"{f.ratio if f.ratio is not None else '—'} | {f.target or '—'} | {met} |"
            )
        notes = [f for f in self.figures if f.note]
        if notes:
            lines += ["", "Notes:", ""]
            lines += [f"- {f.metric} {f.name}: {f.note}" for f in notes]
        for title, body in self.sections.items():
            lines += ["", f"## {title}", "", body.strip()]
        if self.errors:
            lines += ["", "## Benchmarks that did not complete", ""]
            lines += [f"- {k}: {v}" for k, v in self.errors.items()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, *, plots: bool = True) -> Path:
        """report.md, figures.json, the files kept (flame graphs) and PNG plots into out_dir."""
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(self.markdown())
        (out_dir / "figures.json").write_text(json.dumps(self.to_json(), indent=2))
        for name, content in self.files.items():
            (out_dir / name).write_bytes(content)
        if plots:
            self._plots(out_dir)
        return out_dir / "report.md"

    def _plots(self, out_dir: Path) -> None:
        if not self.series:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for name, values in self.series.items():
            fig, ax = plt.subplots(figsize=(7, 3.5))
            if name.startswith("latency:"):
                ax.hist([v * 1000 for v in values], bins=50)
                ax.set_xlabel("ms")
                ax.set_ylabel("count")
            else:
                ax.plot(values)
                ax.set_xlabel("sample")
            ax.set_title(name)
            fig.tight_layout()
            fig.savefig(out_dir / f"{name.replace(':', '_').replace('/', '_')}.png", dpi=90)
            plt.close(fig)


def previous_figures(
    results_dir: Path, *, quick: bool, topology: str = "single"
) -> dict[str, Any] | None:
    """The baseline for this run from the earlier figures.json under results_dir of the same
    topology (a cluster's figures are no baseline for the single node's, nor the reverse) and
    of the same kind when there is one: per figure, the newest earlier run that measured it (a
    run of one module is the newest run only for that module's figures). Each figure carries
    the `started_at` of its run; the result's `runs` lists the runs used, newest first."""
    found = []
    for path in results_dir.glob("*/figures.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        # A run that measured nothing (it failed early) is no baseline.
        if isinstance(data, dict) and isinstance(data.get("figures"), list) and data["figures"]:
            sections = data.get("sections")
            ran_on = sections.get(TOPOLOGY, "single") if isinstance(sections, dict) else "single"
            if ran_on == topology:
                found.append(data)
    same = [d for d in found if d.get("quick") == quick] or found
    if not same:
        return None
    figures: dict[tuple[Any, Any], dict[str, Any]] = {}
    runs: list[str] = []
    for run in sorted(same, key=lambda d: str(d.get("started_at", "")), reverse=True):
        started = str(run.get("started_at", "?"))
        fresh = [
            f
            for f in run["figures"]
            if isinstance(f, dict) and (f.get("metric"), f.get("name")) not in figures
        ]
        for f in fresh:
            figures[(f.get("metric"), f.get("name"))] = {**f, "started_at": started}
        if fresh:
            runs.append(started)
    if not runs:
        return None
    return {
        "started_at": runs[0],
        "quick": same[0].get("quick"),
        "runs": runs,
        "figures": list(figures.values()),
    }


def before_after(previous: dict[str, Any], report: Report) -> str:
    """A markdown table of each figure of this run beside the same figure of `previous`."""
    before = {
        (f.get("metric"), f.get("name")): f
        for f in previous.get("figures", [])
        if isinstance(f, dict)
    }
    runs = previous.get("runs") or [previous.get("started_at", "?")]
    lines = [
        "Against, per figure, the newest earlier run that measured it "
        f"({'quick' if previous.get('quick') else 'full'}): {', '.join(runs)}.",
        "",
        "| metric | figure | before | after | after / before | ratio to anchor before → after |",
        "|---|---|---|---|---|---|",
    ]
    for f in report.figures:
        old = before.get((f.metric, f.name))
        if old is None or not isinstance(old.get("value"), int | float):
            lines.append(f"| {f.metric} | {f.name} | — | {f.value:g} {f.unit} | new | — |")
            continue
        change = f"{f.value / old['value']:.2f}x" if old["value"] else "—"
        ratios = f"{old.get('ratio') if old.get('ratio') is not None else '—'} → "
        ratios += f"{f.ratio if f.ratio is not None else '—'}"
        lines.append(
            f"| {f.metric} | {f.name} | {old['value']:g} {old.get('unit', '')} | "
            f"{f.value:g} {f.unit} | {change} | {ratios} |"
        )
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def rss_by_component() -> dict[str, float]:
    """Resident memory (MiB) of each supervised component, children included."""
    return {name: round(_tree_rss_kib(pid) / 1024, 1) for name, pid in _supervised_pids().items()}


def cpu_by_component() -> dict[str, float]:
    """CPU seconds (user + system) each supervised component has used so far, its live and
    reaped children included (PostgreSQL's backends and WAL sender are its children)."""
    return {name: _tree_cpu_s(pid) for name, pid in _supervised_pids().items()}


def cpu_now() -> dict[str, float]:
    """CPU seconds so far of every component, and of this process (the load and observers)."""
    times = os.times()
    return {**cpu_by_component(), "bench (this process)": times.user + times.system}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each component used between two `cpu_now()` readings."""
    return {k: max(after[k] - before.get(k, 0.0), 0.0) for k in after}


def _supervised_pids() -> dict[str, int]:
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), "status"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pids: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


def _tree_cpu_s(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    try:
        # Fields after the command name (which may hold spaces): utime is the 12th, then
        # stime, cutime (reaped children), cstime.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = sum(int(f) for f in fields[11:15])
    return own / tick + sum(_tree_cpu_s(int(c)) for c in children)


def supervised_pid(component: str) -> int | None:
    """The pid supervisord holds for a component of this stack, None if it is not running."""
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), "pid", component],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


def uvicorn_worker_pids(pid: int) -> list[int]:
    """The worker processes uvicorn's --workers supervisor at `pid` spawned (multiprocessing's
    spawn children; its resource tracker is not one); empty when uvicorn serves in `pid` itself."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in children:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                workers.append(int(child))
    return workers


def _tree_rss_kib(pid: int) -> int:
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_tree_rss_kib(int(c)) for c in children)


class Timer:
    """`with Timer() as t: ...` then t.seconds."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def at_most(limit: float) -> Callable[[float, float | None], bool]:
    """A `met` for Figure.median_of: the value is at most `limit` (the anchor is not judged)."""
    return lambda value, _anchor: value <= limit
