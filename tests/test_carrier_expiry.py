"""Expired posts on a carrier (``node/expiry_notices.py``), with in-process nodes on loopback: a
member's node tells the carrier which posts expired, the carrier replaces them by husks and
wipes their ciphertext from its disk, and a crewmate who catches up from the carrier alone is
sent the husk, never the post; a stranger's notice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.errors import NetError
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net import Stream
from meshcrew.node import open_node
from meshcrew.node.config import CarrierConfig
from meshcrew.node.expiry_notices import EXPIRED_PROTOCOL, send_notice
from meshcrew.service import Member
from meshcrew.spaces import Period, Rhythm
from meshcrew.spaces.bodies import SealedBody
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, make_home, wall_ms

pytestmark = pytest.mark.trio
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MARKER = "MARKER-carrier-expiry-5b1e"
CARRIER = replace(LOOPBACK_NODE, carrier=CarrierConfig(enabled=True))


def home_bytes(root: Path) -> bytes:
    """Every file of a home folder, end to end."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def answer_on(stream: Stream) -> bytes:
    """What the peer answers on a stream: nothing, if it resets or closes it."""
    try:
        return await stream.receive_some(64)
    except NetError:
        return b""


class Clock:
    """The wall clock, moved on by the test (the crew's days pass in a moment)."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def __call__(self) -> int:
        return wall_ms() + self.shift_ms


@dataclass
class World:
    ada: tuple[Home, Identity]
    bo: tuple[Home, Identity]
    pi: tuple[Home, Identity]
    space: bytes
    marker: bytes
    blob: bytes
    """The marker's ciphertext."""


def crew_with_a_carrier(root: Path, *, marker_last: bool = False) -> World:
    """Ada's crew keeps check-ins one day. Bo joined (by files) before Ada wrote the marker, so
    he never held it; then Ada named Pi a carrier (her newest record, so the marker is not;
    with ``marker_last`` she named it first, and the marker is her newest record)."""
    ada, bo, pi = make_home(root, "Ada"), make_home(root, "Bo"), make_home(root, "Pi")
    with Replica.open(ada[0]) as ada_replica, Replica.open(bo[0]) as bo_replica:
        ada_member = Member(ada_replica, ada[1], clock=wall_ms)
        bo_member = Member(bo_replica, bo[1], clock=wall_ms)
        space = ada_member.create_space("Crew", rhythm=Rhythm(Period.DAILY), keep_checkins=1)
        code = ada_member.invite(space, expires_ms=wall_ms() + HOUR_MS)
        bo_member.ingest(ada_member.export(space), sender="file")
        bo_member.join(code)
        ada_member.ingest(bo_member.export(space), sender="file")  # Ada lets him in
        bo_member.ingest(ada_member.export(space), sender="file")
        if marker_last:
            ada_member.add_carrier(space, pi[1].public_key)
        marker = ada_member.checkin(space, text=MARKER, energy=3)
        if not marker_last:
            ada_member.add_carrier(space, pi[1].public_key)
        body = ada_member.view(space).state.bodies[marker]
        assert isinstance(body, SealedBody)
    return World(ada, bo, pi, space, marker, body.blob)


async def test_a_carrier_drops_an_expired_post_and_a_crewmate_gets_its_husk(
        tmp_path: Path) -> None:
    world = crew_with_a_carrier(tmp_path)
    crew_clock = Clock()
    with trio.fail_after(60):
        async with open_node(*world.pi, CARRIER, clock=crew_clock) as pi:
            async with open_node(*world.ada, LOOPBACK_NODE, clock=crew_clock) as ada:
                await ada.connect(pi.addrs()[0])

                def pi_holds_the_post() -> bool:
                    held = pi.replica.get(world.marker)
                    return held is not None and not held.expired

                await wait_until(pi_holds_the_post, within=20)
                assert world.blob in home_bytes(world.pi[0].path)
                crew_clock.shift_ms = 2 * DAY_MS  # the marker's day and the next one end
                # Ada writes again: her node applies the retention before it syncs that on
                # (its timer would wait a minute), and tells the carrier what expired.
                ada.member.checkin(world.space, text="two days later", energy=4)

                def pi_holds_a_husk() -> bool:
                    held = pi.replica.get(world.marker)
                    return held is not None and held.expired

                await wait_until(pi_holds_a_husk, within=20)
                assert ada.replica.get(world.marker).expired  # type: ignore[union-attr]
                assert world.blob not in home_bytes(world.pi[0].path)
                assert pi.replica.rejects(space_id=world.space) == []
            # Ada is gone. Bo, whose clock lags two days (so his node would keep a post it was
            # sent: to it, the marker has not expired), catches up from the carrier alone.
            async with open_node(*world.bo, LOOPBACK_NODE) as bo:
                assert bo.replica.get(world.marker) is None
                await bo.connect(pi.addrs()[0])
                await wait_until(lambda: bo.replica.get(world.marker) is not None, within=20)
                held = bo.replica.get(world.marker)
                assert held is not None
                assert held.expired
                assert world.blob not in home_bytes(world.bo[0].path)
    for folder in (world.pi[0].path, world.bo[0].path):
        assert world.blob not in home_bytes(folder)
        assert MARKER.encode() not in home_bytes(folder)


async def test_a_post_that_was_its_authors_newest_record_leaves_the_carrier_too(
        tmp_path: Path) -> None:
    """The marker is Ada's newest record, on Pi too. Her node, back after two days, posts her
    profile again and deletes the marker as it starts; when it meets Pi it tells it, and sends
    the profile by sync: the carrier husks the marker only once the profile is there (a chain's
    newest record stays whole), so what it did not take at first is sent again."""
    world = crew_with_a_carrier(tmp_path, marker_last=True)
    crew_clock = Clock()
    with trio.fail_after(60):
        async with open_node(*world.pi, CARRIER, clock=crew_clock) as pi:
            async with open_node(*world.ada, LOOPBACK_NODE, clock=crew_clock) as ada:
                await ada.connect(pi.addrs()[0])
                await wait_until(lambda: pi.replica.get(world.marker) is not None, within=20)
                ada_key = world.ada[1].public_key
                assert pi.replica.frontier(world.space)[ada_key].id == world.marker
            crew_clock.shift_ms = 2 * DAY_MS
            async with open_node(*world.ada, LOOPBACK_NODE, clock=crew_clock) as ada:
                assert ada.replica.get(world.marker).expired  # type: ignore[union-attr]
                await ada.connect(pi.addrs()[0])

                def pi_holds_a_husk() -> bool:
                    held = pi.replica.get(world.marker)
                    return held is not None and held.expired

                await wait_until(pi_holds_a_husk, within=30)
                assert pi.replica.frontier(world.space)[ada_key].id != world.marker
                assert world.blob not in home_bytes(world.pi[0].path)


async def test_a_notice_from_anyone_but_a_member_changes_nothing(tmp_path: Path) -> None:
    """A stranger (and a member, for what no notice may do): the carrier resets a stranger's
    stream unanswered, and a member's malformed one; a member's notice husks no membership
    record and no chain's newest record."""
    world = crew_with_a_carrier(tmp_path)
    eve = make_home(tmp_path, "Eve")
    with trio.fail_after(60):
        async with (open_node(*world.pi, CARRIER) as pi,
                    open_node(*world.ada, LOOPBACK_NODE) as ada,
                    open_node(*eve, LOOPBACK_NODE) as stranger):
            await ada.connect(pi.addrs()[0])
            await wait_until(lambda: pi.replica.get(world.marker) is not None, within=20)
            await stranger.connect(pi.addrs()[0])
            with pytest.raises(NetError):
                await send_notice(stranger.host, pi.host.peer_id, world.space, [world.marker])
            held = pi.replica.get(world.marker)
            assert held is not None
            assert not held.expired
            junk = await ada.host.open_stream(pi.host.peer_id, EXPIRED_PROTOCOL)
            await junk.send_all(b"\x00\x00\x00\x03abc")  # a member's, but not a notice
            assert await answer_on(junk) == b""  # reset (or closed) unanswered
            assert not pi.replica.get(world.marker).expired  # type: ignore[union-attr]
            # Ada's word, for her genesis, her carrier record, her newest record (a check-in)
            # and the marker (unexpired by the rule, but the carrier cannot tell: it takes a
            # current member's word for posts).
            newest = ada.member.checkin(world.space, text="the newest", energy=2)
            await wait_until(lambda: pi.replica.get(newest) is not None, within=20)
            records = pi.replica.author_records(world.ada[1].public_key, world.space)
            genesis, carrier = records[0].id, records[-2].id
            assert pi.replica.frontier(world.space)[world.ada[1].public_key].id == newest
            named = [genesis, carrier, newest, world.marker]
            answer = await send_notice(ada.host, pi.host.peer_id, world.space, named)
            assert answer == [False, False, False, True]
            assert [pi.replica.get(rid).expired for rid in named] == [  # type: ignore[union-attr]
                False, False, False, True]
