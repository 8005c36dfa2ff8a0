"""The cycle collector is paused while a big space is built, and what was built is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from meshcrew.collector import FREEZE_ABOVE, long_lived


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    gc.unfreeze()
    if was:
        gc.enable()


def test_a_big_build_pauses_the_collector_then_freezes_what_exists() -> None:
    gc.enable()
    frozen = gc.get_freeze_count()
    with long_lived(FREEZE_ABOVE):
        assert not gc.isenabled()
        built = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(built)


def test_a_small_one_changes_nothing() -> None:
    gc.enable()
    frozen = gc.get_freeze_count()
    with long_lived(FREEZE_ABOVE - 1):
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    with long_lived(FREEZE_ABOVE):
        assert not gc.isenabled()
    assert not gc.isenabled()
