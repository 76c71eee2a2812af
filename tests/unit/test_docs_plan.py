"""The docs suite's plan covers every documented command, and names only commands still shown."""

from __future__ import annotations

import pytest

from tests.docs.extract import all_commands, extract
from tests.docs.plan import PLAN, SKIPPED, normalize, split_block

pytestmark = pytest.mark.unit


def _shown() -> set[str]:
    out: set[str] = set()
    for cmd in all_commands():
        out |= set(split_block(cmd.text)) if "\n" in cmd.text else {normalize(cmd.text)}
    return out


def test_every_documented_command_is_run_or_skipped_with_a_reason() -> None:
    unplanned = sorted(_shown() - PLAN.keys() - SKIPPED.keys())
    assert not unplanned, f"documented but not in tests/docs/plan.py: {unplanned}"


def test_the_plan_names_only_commands_the_documents_still_show() -> None:
    stale = sorted((PLAN.keys() | SKIPPED.keys()) - _shown())
    assert not stale, f"in tests/docs/plan.py but no longer documented: {stale}"


def test_nothing_is_both_run_and_skipped() -> None:
    assert not PLAN.keys() & SKIPPED.keys()


def test_extract_finds_shell_blocks_and_inline_commands_but_not_other_code() -> None:
    text = (
        "Run `make up` then read `services/x.py`.\n"
        "```bash\nexport A=1 \\\n  B=2\necho $A   # shows 1\n```\n"
        "```cypher\nMATCH (n) RETURN n\n```\n"
        "```\nZINCRBY k 1 1\n```\n"
    )
    found = extract("doc.md", text)
    assert [c.text for c in found] == ["make up", "export A=1 \\\n  B=2\necho $A   # shows 1"]
    assert split_block(found[1].text) == ["export A=1 B=2", "echo $A"]
    assert found[0].where == "doc.md:1"
