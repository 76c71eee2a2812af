"""The `campus` command."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from campus_cli import seed as seeding
from campus_cli import stores
from campus_cli.client import ApiError, Gateway
from campus_common.config import ROOT

app = typer.Typer(help="CampusConnect from the command line.", no_args_is_help=True)
demo = typer.Typer(help="Classroom demos, narrated.", no_args_is_help=True)
app.add_typer(demo, name="demo")
console = Console()
PROJECTIONS = ("graph", "cache", "timeseries")


def _lag_table(consumers: list[dict[str, Any]]) -> Table:
    table = Table(title=f"projections at {time.strftime('%H:%M:%S')}")
    for col in ("projection", "group", "state", "lag", "time lag s", "staleness s", "partitions"):
        table.add_column(col)
    for c in consumers:
        parts = ", ".join(
            f"{p['topic'].rsplit('.', 1)[-1]}[{p['partition']}]={p['lag']}"
            for p in c.get("partitions", [])
            if p["lag"]
        )
        table.add_row(
            c["name"],
            c.get("group_id", "?"),
            f"[yellow]{c['state']}[/]" if c["state"] != "running" else c["state"],
            str(c.get("total_lag", "?")),
            _num(c.get("time_lag_s")),
            _num(c.get("staleness_s")),
            parts or "—",
        )
    return table


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}"


@app.command()
def lag(watch: Annotated[bool, typer.Option(help="refresh every second")] = True) -> None:
    """Consumer lag and staleness of every projection (a live table)."""
    gw = Gateway()
    try:
        if not watch:
            console.print(_lag_table(gw.admin("GET", "/admin/consumers")))
            return
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                live.update(_lag_table(gw.admin("GET", "/admin/consumers")))
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        gw.close()


@app.command()
def pause(projection: str) -> None:
    """Pause a projection: its store falls behind while writes go on."""
    _control(projection, "pause")


@app.command()
def resume(projection: str) -> None:
    """Resume a projection: it catches up from its committed offsets."""
    _control(projection, "resume")


def _control(projection: str, action: str) -> None:
    gw = Gateway()
    try:
        state = gw.admin("POST", f"/admin/consumers/{projection}/{action}")
        console.print(f"{projection}: {state['state']} (lag {state.get('total_lag', '?')})")
    except ApiError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        gw.close()


@app.command()
def seed(
    users: Annotated[int, typer.Option(help="synthetic users beyond the named ones")] = 0,
) -> None:
    """Load sample users, groups, memberships, friendships and posts.json through the API."""
    counts = seeding.run(extra_users=users)
    console.print("seeded (new rows): " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _wait(probe: Callable[[], bool], timeout: float = 30) -> float:
    start = time.perf_counter()
    while not probe():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"not converged within {timeout}s")
        time.sleep(0.02)
    return (time.perf_counter() - start) * 1000


def _lag_of(gw: Gateway, name: str) -> int:
    for c in gw.admin("GET", "/admin/consumers"):
        if c["name"] == name:
            return int(c.get("total_lag", 0))
    return -1


@demo.command("consistency")
def demo_consistency() -> None:
    """Pause each projection, write, watch PostgreSQL and the store disagree, resume, converge."""
    gw = Gateway()
    admin = gw.admin_token()
    try:
        for name in PROJECTIONS:
            console.rule(f"[bold]{name}")
            gw.admin("POST", f"/admin/consumers/{name}/pause")
            console.print(f"1. paused the [bold]{name}[/] projection")
            email = f"demo-{uuid.uuid4().hex[:8]}@university.edu"
            user = gw.call(
                "POST",
                "/users",
                json={"email": email, "full_name": "Demo Student", "password": uuid.uuid4().hex},
            ).json()
            uid = user["id"]
            if name == "cache":
                gw.call("GET", f"/users/{uid}")  # cache-aside fills user:{id}
                gw.call("PUT", f"/users/{uid}", token=admin, json={"full_name": "Renamed Student"})
                console.print(f"2. renamed user {uid} to 'Renamed Student' (PostgreSQL commits it)")
            else:
                console.print(f"2. created user {uid} through the API (PostgreSQL commits it)")
            pg = stores.run(stores.pg_user(uid))
            console.print(f"   PostgreSQL: {pg}")
            probe = _probe(name, uid)
            console.print(f"   {name} store: {probe[1]()}   → not there yet")
            time.sleep(1.5)
            console.print(f"   lag of {name}: {_lag_of(gw, name)}")
            gw.admin("POST", f"/admin/consumers/{name}/resume")
            ms = _wait(probe[0])
            console.print(
                f"3. resumed; the {name} store converged [green]{ms:.0f} ms[/] after resume: "
                f"{probe[1]()}"
            )
    finally:
        for name in PROJECTIONS:
            with contextlib.suppress(ApiError):
                gw.admin("POST", f"/admin/consumers/{name}/resume")
        gw.close()


def _probe(name: str, uid: int) -> tuple[Callable[[], bool], Callable[[], Any]]:
    if name == "graph":

        def show() -> Any:
            return stores.run(stores.neo4j_user(uid))

        return (lambda: show() is not None), show
    if name == "cache":

        def cached() -> Any:
            # Entries are "<state>:<lsn>:<json>" (V value, D deleted, S stale; see gateway cache).
            raw = stores.run(stores.redis_get(f"user:{uid}"))
            if not raw:
                return None
            state, _, payload = raw.split(":", 2)
            return json.loads(payload).get("full_name") if state == "V" else f"<{state}>"

        # Converged once the entry no longer shows the old name (refreshed, or marked stale).
        return (lambda: cached() != "Demo Student"), cached

    def count() -> Any:
        return stores.run(stores.ts_events(uid, "user.created"))

    return (lambda: count() == 1), count


FAILURES = {"redis": "redis", "neo4j": "neo4j", "documents": "ferretdb", "kafka": "kafka"}
PROBES = [
    ("GET /users/1 (PostgreSQL via cache)", "/users/1"),
    ("GET /recommendations/leaderboard (Redis)", "/recommendations/leaderboard"),
    ("GET /recommendations/users/1/friends (Neo4j)", "/recommendations/users/1/friends"),
    # The first page of a group's feed is kept in the documents service's memory (issue 16), so
    # it may still answer while FerretDB is down; 50 posts are read from FerretDB.
    ("GET /groups/1/posts/feed (documents, cached)", "/groups/1/posts/feed"),
    ("GET /groups/1/posts/feed?limit=50 (FerretDB)", "/groups/1/posts/feed?limit=50"),
    ("GET /analytics (time-series)", "/analytics"),
]


def _sctl(*args: str) -> None:
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    subprocess.run(  # noqa: S603 (our own supervisorctl, fixed arguments)
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), *args],
        check=True,
        capture_output=True,
    )


def _probe_all(gw: Gateway) -> Table:
    table = Table()
    table.add_column("request")
    table.add_column("status")
    table.add_column("says")
    for label, path in PROBES:
        try:
            r = gw.http.get(path)
            detail = r.json().get("detail", "") if r.status_code >= 400 else "ok"
            colour = (
                "green" if r.status_code < 400 else ("red" if r.status_code >= 500 else "yellow")
            )
            table.add_row(label, f"[{colour}]{r.status_code}[/]", str(detail)[:80])
        except Exception as exc:
            table.add_row(label, "[red]error[/]", str(exc)[:80])
    return table


@demo.command("failure")
def demo_failure(
    store: Annotated[str, typer.Argument(help="redis | neo4j | documents | kafka")],
) -> None:
    """The brief's exercise 2: stop one store, see what still works, start it, see recovery."""
    if store not in FAILURES:
        raise typer.BadParameter(f"choose one of {', '.join(FAILURES)}")
    process = FAILURES[store]
    gw = Gateway(timeout=10)
    try:
        console.rule("everything up")
        console.print(_probe_all(gw))
        _sctl("stop", process)
        console.rule(f"{process} stopped")
        console.print(_probe_all(gw))
        if store == "kafka":
            email = f"demo-{uuid.uuid4().hex[:8]}@university.edu"
            r = gw.http.post(
                "/users",
                json={"email": email, "full_name": "Offline Writer", "password": uuid.uuid4().hex},
            )
            console.print(
                f"a write while Kafka is down: {r.status_code} — accepted; its change waits in "
                "PostgreSQL's WAL (the replication slot) until Kafka is back"
            )
    finally:
        _sctl("start", process)
    console.rule(f"{process} started again")
    try:
        # A restarted store takes a while to accept connections, and each service reconnects
        # on its next request: the demo waits for that rather than printing a stale failure.
        waited = _wait(lambda: _all_answer(gw), timeout=180)
    except TimeoutError:
        console.print(_probe_all(gw))
        console.print(f"[red]still failing 180 s after {process} was started again[/]")
        raise typer.Exit(1) from None
    else:
        console.print(_probe_all(gw))
        console.print(f"every request answers again {waited / 1000:.1f} s after {process} started")
    finally:
        gw.close()


def _all_answer(gw: Gateway) -> bool:
    """Whether every probe gets a non-5xx answer (the services have reconnected)."""
    try:
        return all(gw.http.get(path).status_code < 500 for _, path in PROBES)
    except httpx.HTTPError:
        return False


dlq_app = typer.Typer(
    help="Dead letters: records a projection could not apply.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(projection: str) -> None:
    """Every dead letter of a projection, with its error."""
    from campus_cli import dlq

    letters = dlq.run_list(projection)
    table = Table(title=f"campus.dlq.{projection}: {len(letters)} dead letters")
    for col in ("p@offset", "from", "error", "value", "replayed"):
        table.add_column(col)
    for d in letters:
        table.add_row(
            f"{d.partition}@{d.offset}",
            f"{d.original_topic}[{d.original_partition}]@{d.original_offset}",
            d.error[:60],
            (d.value or b"").decode(errors="replace")[:40],
            "yes" if d.replayed else "no",
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    projection: str,
    only: Annotated[
        list[str] | None,
        typer.Option(help="partition@offset (repeatable); earlier letters there count as done"),
    ] = None,
) -> None:
    """Send not-yet-replayed dead letters back to their original topics (after a fix)."""
    from campus_cli import dlq

    picked = {(int(p), int(o)) for p, o in (x.split("@") for x in only)} if only else None
    done = dlq.run_replay(projection, picked)
    console.print(f"replayed {len(done)} dead letter(s) of {projection}")


@app.command()
def reconcile(
    repair: Annotated[
        bool, typer.Option(help="rewrite every reported fact from its source")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable counts")] = False,
) -> None:
    """Derive every projected store from its sources; print what is missing, extra, duplicated
    or stale. Exits 1 on any drift (unless --repair)."""
    from campus_cli import reconcile as rec

    drifts = stores.run(rec.reconcile(repair=repair))
    dirty = any(not d.clean for d in drifts)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "clean": not dirty,
                    "total": rec.total(drifts),
                    "stores": [d.as_json() for d in drifts],
                }
            )
        )
    else:
        table = Table(title="drift against the sources")
        for col in ("store", "checked", *rec.CATEGORIES, "repaired"):
            table.add_column(col)
        for d in drifts:
            table.add_row(
                d.store,
                str(d.checked),
                *(str(len(getattr(d, c))) for c in rec.CATEGORIES),
                str(d.repaired),
            )
        console.print(table)
        for d in drifts:
            for what in rec.CATEGORIES:
                items = getattr(d, what)
                if items:
                    more = " …" if len(items) > 10 else ""
                    console.print(f"{d.store} {what}: {items[:10]}{more}")
            if d.notes:
                console.print(f"{d.store} notes: {d.notes}")
    if dirty and not repair:
        raise typer.Exit(1)


@app.command()
def chaos(
    minutes: Annotated[float, typer.Option(help="how long to keep injecting faults")] = 10,
    seed: Annotated[int | None, typer.Option(help="pick the same faults again")] = None,
) -> None:
    """Inject randomly chosen faults of the suite one after another under the mixed load; a line
    per fault (acked writes, errors, reconcile), then a table. Exits 1 if any fault failed."""
    import random

    from campus_cli import faults

    rng = random.Random(seed)
    deadline = time.monotonic() + minutes * 60
    outcomes: list[faults.Outcome] = []
    while time.monotonic() < deadline:
        name = rng.choice(list(faults.FAULTS))
        try:
            outcome = stores.run(faults.run_fault(name))
        except Exception as exc:  # a fault that could not even be proven is a failure too
            console.print(f"[red]{name}: {type(exc).__name__}: {exc}[/]")
            raise typer.Exit(1) from exc
        outcomes.append(outcome)
        colour = "green" if outcome.ok else "red"
        console.print(f"[{colour}]{outcome.line()}[/]")
    table = Table(title=f"chaos: {len(outcomes)} faults in {minutes:g} min")
    for col in (
        "fault",
        "injected",
        "acked",
        "lost",
        "applied twice",
        "stale",
        "errors during",
        "max error rate",
        "ok",
    ):
        table.add_column(col)
    for name in sorted({o.fault for o in outcomes}):
        runs = [o for o in outcomes if o.fault == name]
        table.add_row(
            name,
            str(len(runs)),
            str(sum(o.acked for o in runs)),
            str(sum(o.lost + o.drift["missing"] for o in runs)),
            str(sum(o.drift["duplicated"] for o in runs)),
            str(sum(o.drift["stale"] for o in runs)),
            f"{sum(o.errors_during for o in runs)}/{sum(o.attempts_during for o in runs)}",
            f"{max(o.error_rate_during for o in runs):.0%}",
            "yes" if all(o.ok for o in runs) else "[red]no[/]",
        )
    console.print(table)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command()
def rebuild(projection: str) -> None:
    """Empty a projection's store, rewind its consumer group and replay from Kafka."""
    from rich.progress import Progress

    gw = Gateway(timeout=120)
    try:
        gw.admin("POST", f"/admin/consumers/{projection}/rebuild")
        with Progress(console=console) as progress:
            task = progress.add_task(f"replaying into {projection}", total=None)
            while True:
                time.sleep(0.5)
                state = next(
                    c for c in gw.admin("GET", "/admin/consumers") if c["name"] == projection
                )
                end = sum(p["end"] for p in state["partitions"])
                done = sum(p["committed"] for p in state["partitions"])
                progress.update(task, total=max(end, 1), completed=done)
                if state["partitions"] and state["total_lag"] == 0:
                    break
        console.print(f"{projection} rebuilt: {state.get('applied_total', '?')} records applied")
    except ApiError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        gw.close()
