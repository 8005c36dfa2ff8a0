"""One owner for the cycle collector's switch: paused while a big space is built, back on when
the last pauser is done (across threads), and frozen objects thawed again."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from meshcrew.collector import FREEZE_ABOVE, long_lived, pause, paused, resume, thaw


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if was:
        gc.enable()


def test_a_big_build_pauses_the_collector_and_only_long_lived_freezes() -> None:
    frozen = gc.get_freeze_count()
    with paused(FREEZE_ABOVE):
        assert not gc.isenabled()
        built = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    with long_lived(FREEZE_ABOVE):
        assert not gc.isenabled()
        more = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(built) + len(more)
    thaw()
    assert gc.get_freeze_count() == 0


def test_a_small_one_changes_nothing() -> None:
    frozen = gc.get_freeze_count()
    with long_lived(FREEZE_ABOVE - 1), paused(FREEZE_ABOVE - 1):
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_pauses_nest_and_the_last_one_resumes() -> None:
    pause()
    with paused(FREEZE_ABOVE):
        pause()
        resume()
        assert not gc.isenabled()
    assert not gc.isenabled(), "the first pause still holds"
    resume()
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off() -> None:
    gc.disable()
    with paused(FREEZE_ABOVE):
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_threads_pausing_at_once_always_leave_it_on() -> None:
    """Interleaved pauses and resumes from several threads (a worker folding, the app's key
    bursts) never leave the collector off for good."""
    start = threading.Barrier(4)

    def churn() -> None:
        start.wait()
        for _ in range(2_000):
            with paused(FREEZE_ABOVE):
                pass

    workers = [threading.Thread(target=churn) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    assert gc.isenabled()
