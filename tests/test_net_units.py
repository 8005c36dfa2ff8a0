"""Pure parts of net: topic names, penalty points, the starter rule, error translation."""

from __future__ import annotations

import pytest
import trio
from libp2p.network.exceptions import SwarmException
from libp2p.network.stream.exceptions import StreamReset

from meshcrew.errors import (
    ConnectionLost,
    DialError,
    IdentityError,
    NetError,
    PeerTimeout,
    RemoteProtocolError,
)
from meshcrew.net import PeerScores, starts_sessions, topic_name
from meshcrew.net.seam import first_error, translated
from replica_in_memory import space_id


def test_topic_names_hide_the_space_id() -> None:
    name = topic_name(space_id(1))
    assert name.startswith("/meshcrew/space/1/")
    assert space_id(1).hex() not in name
    assert topic_name(space_id(1)) == name
    assert topic_name(space_id(2)) != name


def test_points_add_up_to_a_ban_once() -> None:
    scores = PeerScores(threshold=100, decay_per_s=1.0)
    assert not scores.penalize("p", 60, now=0.0)
    assert scores.points("p", now=0.0) == 60
    assert scores.penalize("p", 60, now=10.0)  # 50 left + 60
    assert scores.is_banned("p")
    assert not scores.penalize("p", 60, now=11.0)  # already banned: not news
    assert scores.banned == {"p"}


def test_points_drain_with_time() -> None:
    scores = PeerScores(threshold=100, decay_per_s=1.0)
    scores.penalize("p", 90, now=0.0)
    assert scores.points("p", now=30.0) == 60
    assert scores.points("p", now=500.0) == 0
    assert not scores.penalize("p", 90, now=500.0)
    scores.forget_idle(now=10_000.0)
    assert scores.points("p", now=10_000.0) == 0


def test_bans_are_remembered_and_forgivable() -> None:
    scores = PeerScores(threshold=10, decay_per_s=0, banned=["old"])
    assert scores.is_banned("old")
    scores.forgive("old")
    assert not scores.is_banned("old")
    with pytest.raises(ValueError, match="threshold"):
        PeerScores(threshold=0, decay_per_s=0)


def test_exactly_one_side_starts_sessions() -> None:
    low, high = bytes(32), b"\xff" * 32
    assert starts_sessions(low, high)
    assert not starts_sessions(high, low)


@pytest.mark.parametrize(("raised", "dialling", "becomes"), [
    (trio.TooSlowError(), False, PeerTimeout),
    (StreamReset(), False, ConnectionLost),
    (StreamReset(), True, DialError),
    (SwarmException("no addresses"), True, DialError),
    (SwarmException("odd"), False, NetError),
    (OSError(113, "No route to host"), True, DialError),
])
def test_foreign_errors_become_net_errors(raised: Exception, dialling: bool,
                                          becomes: type[NetError]) -> None:
    with pytest.raises(becomes) as caught, translated("doing a thing", dialling=dialling):
        raise raised
    assert type(caught.value) is becomes
    assert "doing a thing" in str(caught.value)


@pytest.mark.parametrize("error", [RemoteProtocolError("lie"), IdentityError("bad key"),
                                   ValueError("a bug")])
def test_meshcrew_errors_and_bugs_pass_through(error: Exception) -> None:
    with pytest.raises(type(error)), translated("doing a thing"):
        raise error


def test_the_first_real_error_of_a_group_is_surfaced() -> None:
    inner = RemoteProtocolError("lie")
    group = BaseExceptionGroup("tasks", [BaseExceptionGroup("inner", [inner])])
    assert first_error(group) is inner
