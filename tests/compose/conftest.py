"""The docker-compose stack, brought up once for the `compose` tests and always torn down."""

from __future__ import annotations

import subprocess
import sys
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
        yield ComposeSettings()
    finally:
        down = compose("down", timeout=300)
        assert down.returncode == 0, down.stderr


@pytest.fixture
async def http(compose_stack: ComposeSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


@pytest.fixture
def gw(compose_stack: ComposeSettings) -> str:
    return compose_stack.gateway
