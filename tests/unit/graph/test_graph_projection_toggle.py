"""CAMPUS_GRAPH_PROJECTION_ENABLED: a serving-only replica prepares Neo4j, runs no consumer."""

from __future__ import annotations

from typing import Any

import pytest

from campus_graph import main, repository
from campus_graph.config import Settings

pytestmark = pytest.mark.unit


class FakeRunner:
    def __init__(self) -> None:
        self.started = 0

    async def start(self) -> None:
        self.started += 1


@pytest.mark.parametrize("project", [True, False])
async def test_bootstrap_starts_the_projection_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, project: bool
) -> None:
    schema: list[Any] = []

    async def ensure_schema(driver: Any) -> None:
        schema.append(driver)

    monkeypatch.setattr(repository, "ensure_schema", ensure_schema)
    runner = FakeRunner()
    await main._bootstrap("driver", runner, project=project)  # type: ignore[arg-type]
    assert schema == ["driver"]  # the constraints are made either way: requests MERGE too
    assert runner.started == (1 if project else 0)


def test_the_toggle_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUS_NEO4J_PASSWORD", "x")
    assert Settings().graph_projection_enabled is True
    monkeypatch.setenv("CAMPUS_GRAPH_PROJECTION_ENABLED", "false")
    assert Settings().graph_projection_enabled is False
