"""The host (and the demo's in-process join) ignore only py-libp2p's late-arrival error at
close, however nested."""

from __future__ import annotations

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
