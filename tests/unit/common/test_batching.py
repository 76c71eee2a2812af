"""How the projection runner sizes a batch from the backlog it knows of."""

from __future__ import annotations

import pytest

from campus_common.consumer import FILL_FROM_BACKLOG, fill_size

pytestmark = pytest.mark.unit


def test_caught_up_a_batch_is_applied_as_fetched() -> None:
    assert fill_size(3, 0, max_batch=1000) == 0
    assert fill_size(3, FILL_FROM_BACKLOG - 1, max_batch=1000) == 0


def test_behind_a_batch_grows_to_the_backlog_or_the_cap() -> None:
    assert fill_size(10, 500, max_batch=1000) == 500
    assert fill_size(10, 50_000, max_batch=1000) == 990


def test_a_full_batch_takes_no_more() -> None:
    assert fill_size(1000, 50_000, max_batch=1000) == 0
    assert fill_size(1200, 50_000, max_batch=1000) == 0
