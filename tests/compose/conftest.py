"""The docker-compose stack, brought up once for the `compose` tests and always torn down."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import ROOT, StackSettings

COMPOSE = str(ROOT / "stack" / "docker" / "compose.sh")
# The gateway walkthroughs are reused as they are; their helper module sits beside them.
sys.path.insert(0, str(ROOT / "tests" / "integration" / "gateway"))


class ComposeSettings(StackSettings):
    compose_gateway_port: int = 8080

    @property
    def gateway(self) -> str:
        return f"http://{self.host}:{self.compose_gateway_port}"


def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """stack/docker/compose.sh with these arguments; output captured, never raises."""
    return subprocess.run(
        [COMPOSE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[ComposeSettings]:
    """`compose.sh up` (images chosen for this machine, gateway healthy), then `down -v`."""
    try:
        up = compose("up", timeout=1800)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout[-3000:]}\n{up.stderr[-6000:]}"
        settings = ComposeSettings()
        _warm_up(settings.gateway)
        yield settings
    finally:
        down = compose("down", timeout=300)
        assert down.returncode == 0, down.stderr


def _warm_up(gateway: str, timeout: float = 180) -> None:
    """One friendship through the gateway until it succeeds: the first writes after a cold
    start (Neo4j's first transactions, on a loaded 2-core machine) can outlast the gateway's
    5 s upstream timeout; the walkthroughs measure the warm stack, as the native suite does."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=gateway, timeout=30) as http:
        ids, tokens = [], []
        for _ in range(2):
            email = f"warmup-{uuid.uuid4().hex[:12]}@university.edu"
            body = {"email": email, "full_name": "Warm Up", "password": "warm-up-pass"}
            created = http.post("/users", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            login = http.post("/auth/token", data={"username": email, "password": "warm-up-pass"})
            tokens.append(login.json()["access_token"])
        while True:
            resp = http.post(
                f"/users/{ids[0]}/friends/{ids[1]}",
                headers={"Authorization": f"Bearer {tokens[0]}"},
            )
            # 201 made; 200 made already (an earlier try timed out at the gateway, not in
            # the graph service); either way the write path answers in time now.
            if resp.status_code in (200, 201):
                return
            assert time.monotonic() < deadline, f"graph writes still fail: {resp.text}"
            time.sleep(2)


@pytest.fixture
async def http(compose_stack: ComposeSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


@pytest.fixture
def gw(compose_stack: ComposeSettings) -> str:
    return compose_stack.gateway
