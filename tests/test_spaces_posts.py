"""Posts: validated bodies, refused with a reason when a limit is broken (locally or received)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew import crypto, spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import RecordError
from meshcrew.spaces import (
    COMPASS_SCALES,
    Ask,
    CheckIn,
    CrewCard,
    Followup,
    Gathering,
    LookingForCrew,
    Offer,
    Profile,
    Reaction,
    Reply,
    SpaceKind,
)
from meshcrew.spaces.bodies import SealedBody, draft
from meshcrew.spaces.posts import MAX_TEXT_CHARS, decode_post, encode_post
from meshcrew.spaces.sealing import post_ad
from spaces_world import World, person, pk

ADA, BO = person("ada"), person("bo")
RID = bytes(range(32))

VALID = [
    Profile("Ada", "gardener"),
    CheckIn("arriving slowly", 2, {s.key: 3 for s in COMPASS_SCALES}, ask="a call this week?"),
    CheckIn("ok", 5),
    Reply(RID, "heard you"),
    Reaction(RID, "🫶"),
    Ask("help moving house", "Saturday?"),
    Offer("bike repair"),
    Followup(RID, "done, thanks", closes=True),
    Gathering("Spring gathering", 1_780_000_000_000, "https://meet.example/spring"),
    LookingForCrew(True, "into food co-ops"),
    CrewCard(RID, "Moonlit Crew", open=False),
]


@pytest.mark.parametrize("post", VALID, ids=lambda p: p.kind.value)
def test_posts_round_trip(post: spaces.Post) -> None:
    assert decode_post(encode_post(post)) == post


BAD: list[tuple[dict[str, Any], str]] = [
    ({"k": "checkin", "text": "x", "energy": 0}, "energy"),
    ({"k": "checkin", "text": "x", "energy": 6}, "energy"),
    ({"k": "checkin", "text": "x", "energy": True}, "energy"),
    ({"k": "checkin", "text": "x", "energy": 3.0}, "energy"),
    ({"k": "checkin", "text": "", "energy": 3}, "text is empty"),
    ({"k": "checkin", "text": "x" * (MAX_TEXT_CHARS + 1), "energy": 3}, "longer than"),
    ({"k": "checkin", "text": "x", "energy": 3, "compass": {"happiness": 3}}, "no scale"),
    ({"k": "checkin", "text": "x", "energy": 3, "compass": {"belonging": 9}}, "belonging"),
    ({"k": "checkin", "text": "x", "energy": 3, "ask": ""}, "ask is empty"),
    ({"k": "checkin", "text": "a\x1b[2Jb", "energy": 3}, "control"),
    ({"k": "checkin", "text": "abc\u202edcba", "energy": 3}, "control"),
    ({"k": "checkin", "energy": 3}, "lacks a field"),
    ({"k": "reply", "to": b"short", "text": "x"}, "record id"),
    ({"k": "reaction", "to": RID, "text": "x" * 17}, "longer than"),
    ({"k": "followup", "to": RID, "text": "x", "closes": 1}, "true or false"),
    ({"k": "gathering", "title": "t", "when_ms": -1, "where": ""}, "timestamp"),
    ({"k": "profile", "name": "", "bio": ""}, "name is empty"),
    ({"k": "poll", "q": "?"}, "unknown post kind"),
    ({"k": "profile", "name": "e\u0301"}, "NFC"),
]


@pytest.mark.parametrize(("wire", "detail"), BAD, ids=[d for _, d in BAD])
def test_invalid_posts_are_refused_with_a_reason(wire: dict[str, Any], detail: str) -> None:
    with pytest.raises(RecordError, match=detail) as caught:
        decode_post(msgpack.packb(wire, use_bin_type=True))
    assert caught.value.reason is Reason.BAD_BODY


def test_the_constructors_refuse_what_decoding_refuses() -> None:
    with pytest.raises(RecordError, match="energy"):
        CheckIn("x", 7)
    with pytest.raises(RecordError, match="no scale"):
        CheckIn("x", 3, {"mood": 2})
    with pytest.raises(RecordError, match="not msgpack"):
        decode_post(b"\xc1")


@settings(max_examples=examples(100), deadline=None)
@given(energy=st.integers(-5, 10), scores=st.dictionaries(
    st.sampled_from([s.key for s in COMPASS_SCALES]), st.integers(-1, 7), max_size=6))
def test_check_in_ranges(energy: int, scores: dict[str, int]) -> None:
    valid = 1 <= energy <= 5 and all(1 <= v <= 5 for v in scores.values())
    if valid:
        assert dict(CheckIn("here", energy, scores).compass) == scores
    else:
        with pytest.raises(RecordError) as caught:
            CheckIn("here", energy, scores)
        assert caught.value.reason is Reason.BAD_BODY


def test_a_received_invalid_post_is_refused_by_every_member() -> None:
    """A member who bypasses the constructors still gets ``bad_body`` on every replica."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    state = w.state(space)
    epoch = state.current_epoch_id
    assert epoch is not None
    key = spaces.unlock(state, BO).epoch_keys[epoch]
    wire = msgpack.packb({"k": "checkin", "text": "x", "energy": 11}, use_bin_type=True)
    blob = crypto.encrypt(key, wire, post_ad(space, pk(BO), epoch), w.rng)
    bad = w.sign(BO, space, draft(SealedBody(epoch, blob)))
    state = w.state(space)
    for member in (ADA, BO):
        opened = spaces.open_posts(state, spaces.unlock(state, member))
        assert opened.refused[bad.id].reason is Reason.BAD_BODY
        assert "energy" in opened.refused[bad.id].detail


def test_posts_belong_to_their_kind_of_space() -> None:
    w = World()
    crew = w.found(ADA, SpaceKind.CREW)
    congregation = w.found(ADA, SpaceKind.CONGREGATION, "Congregation")
    with pytest.raises(SpaceError, match="gathering cannot be posted in a crew"):
        spaces.seal_post(w.state(crew), ADA, Gathering("g", 0, ""), w.rng)
    with pytest.raises(SpaceError, match="checkin cannot be posted in a congregation"):
        spaces.seal_post(w.state(congregation), ADA, CheckIn("x", 3), w.rng)
    with pytest.raises(SpaceError, match="not a member"):
        spaces.seal_post(w.state(crew), BO, CheckIn("x", 3), w.rng)
    # received anyway (a modified client): refused when opened
    state = w.state(crew)
    epoch = state.current_epoch_id
    assert epoch is not None
    key = spaces.unlock(state, ADA).epoch_keys[epoch]
    blob = crypto.encrypt(key, encode_post(Gathering("g", 0, "")), post_ad(crew, pk(ADA), epoch),
                          w.rng)
    rec = w.sign(ADA, crew, draft(SealedBody(epoch, blob)))
    state = w.state(crew)
    opened = spaces.open_posts(state, spaces.unlock(state, ADA))
    assert opened.refused[rec.id].reason is Reason.BAD_BODY


def test_a_congregation_cannot_have_a_parent() -> None:
    w = World()
    with pytest.raises(SpaceError, match="cannot belong"):
        spaces.create_space(ADA, SpaceKind.CONGREGATION, spaces.SpaceMeta("C", parent=RID),
                            w.rng)
