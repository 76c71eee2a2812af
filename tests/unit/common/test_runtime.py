import gc
from collections.abc import Iterator

import pytest

from campus_common import runtime


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settling_the_heap_freezes_what_start_up_built_and_collects_less_often() -> None:
    built_at_start = [object() for _ in range(1000)]
    _, older, oldest = gc.get_threshold()

    runtime.settle_heap()

    assert gc.get_freeze_count() >= len(built_at_start)
    assert gc.get_threshold() == (runtime.GEN0_THRESHOLD, older, oldest)
    assert gc.isenabled()  # cycles are still collected
