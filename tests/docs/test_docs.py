"""Every command the README, the teaching guide and the services' READMEs show, run in order.

The commands run in one terminal (a real pty with bash), as a reader types them: variables set
by one command (`TOKEN=...`, `set -a; . ./.env`) are there for the next, live commands get
Ctrl-C, interactive programs get typed input. The run starts with whatever stack is there;
the README's own `make clean` (followed by `make up`, as the reader would) makes it fresh before
the first `make seed`. Run it on its own (`make test-docs`): it stops and wipes the stack.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pexpect
import pytest

from tests.conftest import StackSettings
from tests.docs.extract import ROOT, all_commands
from tests.docs.plan import PLAN, SEED_ADDS_NOTHING, SKIPPED, Seen, Step, normalize, split_block

pytestmark = pytest.mark.docs

PROMPT = r"\[\[docs rc=(\d+)\]\] "
DEFAULT_PORTS = {
    "CAMPUS_GATEWAY_PORT": 8000,
    "CAMPUS_PG_PORT": 5432,
    "CAMPUS_REDIS_PORT": 6379,
    "CAMPUS_NEO4J_HTTP_PORT": 7474,
}


@dataclass(frozen=True)
class Planned:
    where: str
    command: str
    step: Step | None
    skip_reason: str | None


def _planned() -> list[Planned]:
    out: list[Planned] = []
    for cmd in all_commands():
        texts = split_block(cmd.text) if "\n" in cmd.text else [normalize(cmd.text)]
        for text in texts:
            out.append(Planned(cmd.where, text, PLAN.get(text), SKIPPED.get(text)))
    return out


class Terminal:
    """One bash in a pty, as a reader's terminal: state carries from command to command."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "CAMPUS_"))}
        env.update(TERM="dumb", COLUMNS="160", LINES="50", NO_COLOR="1")
        self.shell = pexpect.spawn(
            "bash",
            ["--norc", "--noprofile"],
            cwd=str(ROOT),
            env=env,
            encoding="utf-8",
            codec_errors="replace",
            dimensions=(50, 160),
            timeout=30,
            preexec_fn=_reader_signals,
        )
        self.shell.sendline("stty -echo; PS1='[[docs rc=$?]] '; PS2=''")
        self.shell.expect(PROMPT)

    def run(self, command: str, step: Step) -> tuple[int, str]:
        """Type the command and wait for the prompt; returns the exit status and the output."""
        code, out = self._run(command, step)
        return code, out.replace("\r\n", "\n")

    def _run(self, command: str, step: Step) -> tuple[int, str]:
        self.shell.sendline(command)
        if step.typed:
            out = []
            time.sleep(1)
            for line in step.typed:
                self.shell.sendline(line)
                time.sleep(0.5)
            self.shell.expect(PROMPT, timeout=step.timeout)
            out.append(self.shell.before or "")
            return int(self.shell.match.group(1)), "".join(out)
        if step.live:
            # A live view: wait for what it promises to show, then quit as a reader would. A
            # prompt in the output is no sign the view started (its "[[" satisfies `make logs`'
            # pattern "\\["; in one CI run `make logs` kept the terminal after its Ctrl-C and
            # every later step timed out): prompts are dropped before matching, and Ctrl-C is
            # sent again until the prompt is back.
            seen = ""
            deadline = time.monotonic() + step.timeout
            while time.monotonic() < deadline and not all(
                re.search(p, re.sub(PROMPT, "", seen), re.M) for p in step.expect
            ):
                try:
                    seen += self.shell.read_nonblocking(65536, timeout=1)
                except pexpect.TIMEOUT:
                    continue
            for attempt in range(3):
                self.shell.sendintr()
                try:
                    self.shell.expect(PROMPT, timeout=10 if attempt < 2 else 30)
                    break
                except pexpect.TIMEOUT:
                    continue
            else:
                raise AssertionError(f"{command!r} kept the terminal after three Ctrl-C")
            return 0 if int(self.shell.match.group(1)) in (0, 2, 130) else 1, seen + (
                self.shell.before or ""
            )
        self.shell.expect(PROMPT, timeout=step.timeout)
        return int(self.shell.match.group(1)), self.shell.before or ""

    def close(self) -> None:
        self.shell.close(force=True)


def _reader_signals() -> None:
    # A reader's terminal delivers Ctrl-C. A run started in the background of a script
    # (`.ci/run &`) ignores SIGINT, the shell and every command would inherit that, and a live
    # view such as `make logs` would never quit: give the reader's shell the default back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def localize(command: str, settings: StackSettings) -> str:
    """What a reader with other ports in .env would change: the ports, nothing else."""
    ports = {
        "CAMPUS_GATEWAY_PORT": settings.gateway_port,
        "CAMPUS_PG_PORT": settings.pg_port,
        "CAMPUS_REDIS_PORT": settings.redis_port,
    }
    if ports == {k: DEFAULT_PORTS[k] for k in ports}:
        return command
    out = command.replace("localhost:8000", f"localhost:{ports['CAMPUS_GATEWAY_PORT']}")
    out = re.sub(r"\bpsql ", f"psql -p {ports['CAMPUS_PG_PORT']} ", out)
    return re.sub(r"\b(redis-cli|redis-benchmark)\b", rf"\1 -p {ports['CAMPUS_REDIS_PORT']}", out)


def settle(settings: StackSettings, *, timeout: float = 300) -> None:
    """Wait until every dependency is healthy and every projection has caught up (lag 0)."""
    base = f"http://127.0.0.1:{settings.gateway_port}"
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                token = http.post(
                    "/auth/token",
                    data={
                        "username": settings.admin_email,
                        "password": settings.admin_password.get_secret_value(),
                    },
                ).json()["access_token"]
                if http.get("/health").status_code != 200:
                    raise ValueError("not every dependency is healthy yet")
                consumers = http.get(
                    "/admin/consumers", headers={"Authorization": f"Bearer {token}"}
                ).json()
                if all(c.get("total_lag") == 0 for c in consumers):
                    return
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                pass
            time.sleep(2)
    raise AssertionError(f"the projections did not catch up within {timeout:.0f} s")


@pytest.fixture(scope="module")
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


PLANNED = _planned()


def _budget(p: Planned) -> int:
    """The step's own bound: each run, the command after it, and waiting for a quiet stack."""
    if p.step is None:
        return 60
    then = PLAN.get(p.step.then, Step()).timeout if p.step.then else 0
    return int(p.step.timeout * max(1, len(p.step.variants)) + then + 300 * p.step.settle + 60)


@pytest.mark.parametrize(
    "planned",
    [
        pytest.param(p, id=f"{p.where} {p.command[:60]}", marks=pytest.mark.timeout(_budget(p)))
        for p in PLANNED
    ],
)
def test_documented_command(
    planned: Planned, terminal: Terminal, seen: Seen, settings: StackSettings
) -> None:
    """The command runs, exits 0 and shows what the text says it shows."""
    if planned.skip_reason:
        pytest.skip(planned.skip_reason)
    step = planned.step
    assert step is not None, (
        f"{planned.where}: no plan for {planned.command!r} (tests/docs/plan.py)"
    )
    if step.once and planned.command in seen.ran:
        pytest.skip(f"ran above: {planned.command}")
    seen.ran.add(planned.command)
    if step.settle:
        settle(settings)
    for command, shows in step.variants or ((step.run_as or planned.command, ()),):
        code, out = terminal.run(localize(command, settings), step)
        assert code in step.ok_codes, f"{command!r} exited {code}:\n{out[-3000:]}"
        for pattern in (*step.expect, *shows):
            assert re.search(pattern, out, re.M), f"{command!r}: no {pattern!r} in:\n{out[-3000:]}"
        for pattern in step.reject:
            assert not re.search(pattern, out), f"{command!r}: {pattern!r} in:\n{out[-3000:]}"
        if planned.command == "make seed" or step.then == "make seed":
            seen.seeds.append(out)
    if step.then:
        then = PLAN.get(step.then, Step())
        code, out = terminal.run(localize(step.then, settings), then)
        assert code == 0, f"then {step.then!r} exited {code}:\n{out[-3000:]}"
        for pattern in then.expect:
            assert re.search(pattern, out, re.M), (
                f"{step.then!r}: no {pattern!r} in:\n{out[-3000:]}"
            )
    if planned.command == "make seed" and len(seen.seeds) >= 2:
        # A seeded campus: the second `make seed` adds nothing and fails on nothing.
        assert re.search(SEED_ADDS_NOTHING, seen.seeds[-1]), seen.seeds[-1][-2000:]
