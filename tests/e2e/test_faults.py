"""Every fault of the suite under the mixed write load (campus_cli.faults).

Each case asserts that the fault happened (its proof), that every acknowledged write reached
every store that projects it, that the full reconcile finds 0 in every category, that no request
answered 500, and that the error rate while the fault lasted stayed under the fault's own bound.
"""

from __future__ import annotations

import pytest

from campus_cli.faults import FAULTS, run_fault
from tests.conftest import StackSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_under_mixed_load(stack: StackSettings, name: str) -> None:
    outcome = await run_fault(name)
    assert outcome.proof, "the fault left no proof that it happened"
    assert outcome.attempts_during > 0, "no write was attempted while the fault lasted"
    assert outcome.acked > 20, outcome.line()
    assert outcome.problems == [], outcome.problems
    assert outcome.drift == {"missing": 0, "extra": 0, "duplicated": 0, "stale": 0}, outcome.drift
    assert outcome.statuses_500 == 0, outcome.errors_by_op
    assert outcome.error_rate_during <= outcome.max_error_rate, (
        f"{outcome.errors_during}/{outcome.attempts_during} failed: {outcome.statuses_during} "
        f"(bound {outcome.max_error_rate:.0%}: {FAULTS[name].why})"
    )
    if name == "stop-ferretdb":
        # Post, comment and like writes during the outage: 503, and nothing half-applied
        # (the reconcile's documents check finds no event without its document, and back).
        during = outcome.errors_by_op_during
        docs = {k: n for k, n in during.items() if k.startswith(("post.", "comment."))}
        assert docs, "no post, comment or like write failed during the outage"
        assert all(k.endswith(" 503") for k in docs), docs
