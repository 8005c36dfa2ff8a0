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
from meshcrew.net import NetConfig, PeerScores, starts_sessions, topic_name
from meshcrew.net.scores import INVALID_GOSSIP, INVALID_RECORD, PROTOCOL_VIOLATION
from meshcrew.net.seam import first_error, translated
from replica_in_memory import space_id


def test_topic_names_hide_the_space_id() -> None:
    name = topic_name(space_id(1))
    assert name.startswith("/meshcrew/space/2/")
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


def test_the_documented_offences_ban_at_the_default_threshold() -> None:
    """Four invalid gossip messages in a row ban (docs/sync.md); two protocol violations too."""
    config = NetConfig()
    scores = PeerScores(config.ban_threshold, config.penalty_decay_per_s)
    assert [scores.penalize("g", INVALID_GOSSIP, now=0.0) for _ in range(4)] == [
        False, False, False, True]
    assert [scores.penalize("v", PROTOCOL_VIOLATION, now=0.0) for _ in range(2)] == [False, True]
    assert [scores.penalize("r", INVALID_RECORD, now=0.0) for _ in range(10)][-2:] == [False, True]


def test_one_offence_worth_the_threshold_bans_at_once() -> None:
    scores = PeerScores(threshold=50, decay_per_s=1.0)
    assert scores.penalize("p", 50, now=0.0)
    assert scores.is_banned("p")


def test_points_drain_at_the_given_rate_from_the_last_offence() -> None:
    scores = PeerScores(threshold=1000, decay_per_s=2.0)
    scores.penalize("p", 100, now=1000.0)
    assert scores.points("p", now=1010.0) == 80
    scores.penalize("p", 10, now=1010.0)
    assert scores.points("p", now=1015.0) == 80


def test_only_active_offenders_hold_a_tally() -> None:
    """Memory follows active offenders: a ban, a pardon or drained points drop the tally."""
    scores = PeerScores(threshold=100, decay_per_s=1.0)
    scores.penalize("drained", 10, now=0.0)
    scores.penalize("active", 90, now=0.0)
    scores.penalize("pardoned", 50, now=0.0)
    scores.penalize("banned", 60, now=0.0)
    scores.penalize("banned", 60, now=0.0)
    scores.forgive("pardoned")
    assert scores.points("pardoned", now=0.0) == 0
    scores.forget_idle(now=20.0)
    assert set(scores._tallies) == {"active"}  # the only state kept per peer
    assert scores.points("active", now=20.0) == 70


def test_any_positive_threshold_and_no_decay_are_accepted() -> None:
    scores = PeerScores(threshold=0.5, decay_per_s=0)
    assert scores.penalize("p", 0.5, now=0.0)
    with pytest.raises(ValueError, match=r"^threshold must be positive and decay non-negative$"):
        PeerScores(threshold=10, decay_per_s=-1)


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
