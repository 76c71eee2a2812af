"""Fault-injection harness: the mixed load, the faults and the reconcile live in campus_cli
(`load.py`, `faults.py`, `reconcile.py`) so `campus chaos` runs exactly what the tests run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from campus_cli.faults import FaultSettings, converge
from campus_cli.reconcile import Drift, total
from tests.conftest import StackSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def admin_http(stack: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as http:
        r = await http.post(
            "/auth/token",
            data={
                "username": stack.admin_email,
                "password": stack.admin_password.get_secret_value(),
            },
        )
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield http


async def converged(timeout: float = 240) -> list[Drift]:
    """Wait for empty outboxes, lag 0 and a clean full reconcile; fail with the drift if not."""
    drifts = await converge(FaultSettings(), timeout=timeout)
    assert all(d.clean for d in drifts), (
        f"stores did not converge in {timeout}s: {total(drifts)} "
        f"{[d.as_json() for d in drifts if not d.clean]}"
    )
    return drifts
