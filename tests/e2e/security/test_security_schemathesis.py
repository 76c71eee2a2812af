"""schemathesis against the gateway's live OpenAPI document: no 5xx, every response as documented.

Driven from one test through schemathesis's Python API (`openapi.from_url`, then a Hypothesis
strategy per operation) rather than `schemathesis.pytest.from_fixture`, whose test wrapper sets
`Function._nodeid`, an attribute pytest 9 no longer has; loading the schema at import time
instead would break collection whenever the stack is down.

Each operation, the admin's included, gets MAX_EXAMPLES positive and MAX_EXAMPLES negative
cases, sent with the admin's token so that authorised paths run, and checked for no 5xx, a
documented status, a documented content type and a body matching its schema. Ids in the cases
are pointed at accounts, a group and a post made for this run, a projection name at one that
does not exist and a rate-limit subject at the run's own account, so the admin's token changes
nothing anyone else owns (the admin account included), and the deletes run last so the rest
still find something to work on. The admin routes' success paths, on a real projection, are in
the authorization matrix.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from campus_common.web import MAX_ID
from tests.e2e.security.security_helpers import Account, register

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(300)]

MAX_EXAMPLES = 15
BUDGET_S = 200.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
POST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME = re.compile(r"[a-z][a-z0-9_-]{0,49}")
SUBJECT = re.compile(r"[0-9A-Fa-f.:]{1,64}")
FUZZ_PROJECTION = "fuzz-no-such-projection"


@dataclass
class Sandbox:
    """The ids generated cases are pointed at, and what the run found."""

    ids: dict[str, int | str]
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)

    def confine(self, case: Any) -> None:
        """Point every valid id of the case at the sandbox; invalid ones stay, to be refused."""
        containers = [case.path_parameters, case.query]
        if isinstance(case.body, dict):
            containers.append(case.body)
        for values in containers:
            for key, value in list((values or {}).items()):
                if key in self.ids and _is_valid(key, value):
                    values[key] = self.ids[key]


def _is_valid(key: str, value: Any) -> bool:
    if key == "post_id":
        return isinstance(value, str) and POST_ID.fullmatch(value) is not None
    if key == "name":
        return isinstance(value, str) and NAME.fullmatch(value) is not None
    if key == "subject":
        return isinstance(value, str) and SUBJECT.fullmatch(value) is not None
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


@pytest.fixture
async def sandbox(gw: httpx.AsyncClient) -> Sandbox:
    mine, friend = await register(gw, "Fuzz Subject"), await register(gw, "Fuzz Friend")
    group = await gw.post("/groups", json={"name": "Fuzz", "course_code": "FZ"}, headers=mine.auth)
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    assert (await gw.post(f"/groups/{group_id}/join", json={}, headers=mine.auth)).is_success
    post = await gw.post(f"/groups/{group_id}/posts", json={"title": "fuzz"}, headers=mine.auth)
    assert post.status_code == 201, post.text
    ids: dict[str, int | str] = {
        "user_id": mine.id,
        "author_id": mine.id,
        "follower_id": mine.id,
        "other_id": friend.id,
        "followee_id": friend.id,
        "group_id": group_id,
        "post_id": post.json()["id"],
        # Admin routes: never a real projection (pausing or rebuilding one would disturb the
        # other tests), and rate-limit overrides only for this run's own account.
        "name": FUZZ_PROJECTION,
        "subject": str(mine.id),
    }
    return Sandbox(ids)


def fuzz(base_url: str, admin: Account, box: Sandbox) -> None:
    """Every operation, positive then negative; findings and unreached operations into `box`."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:
            box.failures.append(f"the document describes an operation badly: {result.err()}")
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    auth = admin.auth
    deadline = time.monotonic() + BUDGET_S
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() > deadline:
                box.unreached.append(f"{operation.label} ({mode.value})")
                continue

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: the report has a curl
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                box.confine(case)
                box.calls += 1
                response = case.call_and_validate(headers=auth, checks=CHECKS, timeout=15)
                box.statuses[response.status_code] += 1

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to negate (no parameters, no body)
            except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
                box.failures.append(f"{operation.label} ({mode.value}):\n{exc}")


async def test_the_gateway_keeps_its_openapi_promises(
    gw: httpx.AsyncClient, admin: Account, sandbox: Sandbox
) -> None:
    # The admin's own quota would run out long before the run does; only the admin's.
    unlimited = {"limit": 0, "window_s": 60, "ttl_s": int(BUDGET_S) + 120}
    r = await gw.put(f"/admin/rate-limits/user/{admin.id}", json=unlimited, headers=admin.auth)
    assert r.status_code == 200, r.text
    started = time.monotonic()
    try:
        await asyncio.to_thread(fuzz, str(gw.base_url).rstrip("/"), admin, sandbox)
    finally:
        await gw.delete(f"/admin/rate-limits/user/{admin.id}", headers=admin.auth)
        for scope in ("user", "address"):
            subject = sandbox.ids["subject"]
            await gw.delete(f"/admin/rate-limits/{scope}/{subject}", headers=admin.auth)
    summary = (
        f"{sandbox.calls} requests in {time.monotonic() - started:.0f}s, "
        f"statuses {sorted(sandbox.statuses.items())}"
    )
    print(summary)  # shown with -s or -rP: what the run covered
    assert not sandbox.failures, f"{summary}\n\n" + "\n\n".join(sandbox.failures)
    assert not sandbox.unreached, f"{summary}; not reached within {BUDGET_S}s: {sandbox.unreached}"
    assert (await gw.get("/health")).status_code == 200
