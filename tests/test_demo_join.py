"""The host (and the demo's in-process join) ignore only py-libp2p's late-arrival error at
close, however nested."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcrew import identity
from meshcrew.demo.crew import join_in_process
from meshcrew.errors import MeshcrewError
from meshcrew.home import Home
from meshcrew.net.host import LATE_ARRIVAL, late_arrivals_only


def _as_libp2p_raises_it(*leaves: Exception) -> ExceptionGroup[Exception]:
    """The nesting seen when the joining node closes: trio's nursery, libp2p's service manager,
    the connection's nursery (observed in about one join in seven on loopback)."""
    inner = ExceptionGroup("Exceptions from Trio nursery", list(leaves))
    return ExceptionGroup("Exceptions from Trio nursery",
                          [ExceptionGroup("Encountered multiple Exceptions: ", [inner])])


def test_late_arrivals_alone_are_recognised_at_any_depth() -> None:
    assert late_arrivals_only(_as_libp2p_raises_it(RuntimeError(LATE_ARRIVAL)))
    assert late_arrivals_only(_as_libp2p_raises_it(RuntimeError(LATE_ARRIVAL),
                                                   RuntimeError(LATE_ARRIVAL)))
    assert late_arrivals_only(ExceptionGroup("flat", [RuntimeError(LATE_ARRIVAL)]))


def test_any_other_error_beside_them_is_not() -> None:
    assert not late_arrivals_only(_as_libp2p_raises_it(RuntimeError("something else")))
    assert not late_arrivals_only(_as_libp2p_raises_it(RuntimeError(LATE_ARRIVAL),
                                                       ValueError(LATE_ARRIVAL)))
    assert not late_arrivals_only(ExceptionGroup("flat", [RuntimeError(LATE_ARRIVAL),
                                                          OSError("reset")]))


def test_a_refused_join_is_one_meshcrew_error_not_a_nest_of_groups(tmp_path: Path) -> None:
    """trio and libp2p wrap an error raised inside the node in their task groups; the demo's
    join hands the CLI the error itself, so it prints one sentence, not a traceback."""
    home = Home(tmp_path / "you")
    home.ensure()
    you = identity.Identity.generate("You")
    identity.save(you, home.key_file)
    with pytest.raises(MeshcrewError) as caught:
        join_in_process(home, you, "this is not an invite code", [])
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert "invite" in str(caught.value).lower()
