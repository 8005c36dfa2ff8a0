"""Shared fixtures: a fresh home folder, deterministic identities, a cheap passphrase KDF, a
town of members, a spy on the service's folds; the Hypothesis profile
(``tests/hypothesis_profiles.py``)."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl import pwhash

from hypothesis_profiles import register_profiles
from meshcrew import identity
from meshcrew.home import Home
from meshcrew.service import views as service_views
from meshcrew.spaces import SpaceState, fold
from test_service_support import Homes, town_at

register_profiles()


PROCESS_FIXTURES = frozenset({"fleet", "demo_dir"})
"""Fixtures of tests that run ``meshcrew node`` processes (``tests/node_processes.py``, the
demo's)."""


TIMED_HOSTS = "test_net_"
"""Modules of libp2p hosts on loopback whose deadlines count on the CPU they get (relayed
streams, gossip bursts): with the process tests, not beside them (a relay test's teardown and a
relayed gossip burst failed there in two-worker runs)."""


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``scripts/test`` runs two workers, ``--dist loadgroup``), the slow
    tests and every test that runs node processes (timing-sensitive: node processes, the NAT
    lab, tmux, crash and chaos runs) go to one worker, one after another, as in a run without
    workers; the other worker runs the in-process tests beside them. A slow test that runs in
    one process names a group of its own (``@pytest.mark.xdist_group``) and may go to either."""
    if not hasattr(config, "workerinput"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if (item.get_closest_marker("slow") is not None
                or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.path.name.startswith(TIMED_HOSTS)):
            item.add_marker(pytest.mark.xdist_group("processes"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """A failure raised through nested task groups (libp2p's hosts nest a dozen) prints past
    Python's ten levels as "... (max_group_depth is 10)", hiding what failed: add the leaf
    exceptions, each with its last frames, as a section of the report."""
    report = yield
    raised = call.excinfo.value if call.excinfo is not None else None
    if report.failed and isinstance(raised, BaseExceptionGroup):
        report.sections.append(("leaf exceptions", "\n".join(_leaves(raised))))
    return report


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[str]:
    for inner in group.exceptions:
        if isinstance(inner, BaseExceptionGroup):
            yield from _leaves(inner)
        else:
            frames = "".join(traceback.format_tb(inner.__traceback__)[-6:])
            yield f"{frames}{type(inner).__name__}: {inner}\n"


MakeIdentity = Callable[..., identity.Identity]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A new, empty home folder (mode 0700) under the test's temporary folder."""
    made = Home(tmp_path / "home")
    made.ensure()
    return made


@pytest.fixture
def make_identity() -> MakeIdentity:
    """A factory of deterministic identities: ``make_identity("Ada")``, ``make_identity(seed=b)``.

    Without a seed, each call gives a different key (derived from a counter), the same in every
    run, so failures reproduce.
    """
    count = 0

    def make(name: str = "Ada", *, seed: bytes | None = None) -> identity.Identity:
        nonlocal count
        count += 1
        if seed is None:
            seed = hashlib.sha256(b"meshcrew test identity %d" % count).digest()
        return identity.Identity.from_seed(seed, name)

    return make


@pytest.fixture
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make passphrase sealing cheap (argon2id at its minimum cost) for this test."""
    monkeypatch.setattr(identity, "KDF_OPSLIMIT", pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(identity, "KDF_MEMLIMIT", pwhash.argon2id.MEMLIMIT_MIN)


@pytest.fixture
def town(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Homes[Any]]:
    """Members on real replicas in home folders under the test's temporary folder, closed
    after the test: in the TUI's tests (modules ``test_tui_*``), each behind the app's backend
    (a ``Town`` of ``tests/test_tui_support.py``); elsewhere, the member service itself (a
    ``Town`` of ``tests/test_service_support.py``)."""
    if request.module.__name__.startswith("test_tui_"):
        from test_tui_support import town_at as tui_town_at

        yield from tui_town_at(tmp_path)
    else:
        yield from town_at(tmp_path)


@pytest.fixture
def folds(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The spaces the member service folded from scratch, in order (a spy: the real fold
    still runs)."""
    seen: list[bytes] = []

    def counting(space_id: bytes, records: Any) -> SpaceState:
        seen.append(space_id)
        return fold(space_id, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)
    return seen
