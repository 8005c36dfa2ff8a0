"""Retention across real ``meshcrew node`` processes on 127.0.0.1, driven through the CLI: a
check-in kept for one cycle expires at the cycle's end on every member's node, and afterwards
neither its text nor its ciphertext is in any file of any member's home folder, nor of the
home folder of the carrier the crew names (the members' nodes tell it what expired).

The crew's daily rhythm gets a UTC offset that puts its cycle boundary at a whole minute 30 to
90 s away, so the one expiry happens within the test; the crew is made offline, in the test's
process (``crew_in_process``), so that little comes between the choice and the check-in. Waits
poll a condition with a deadline (see ``node_processes``); nothing sleeps a fixed time.
"""

from __future__ import annotations

import time

import pytest

from meshcrew.service import SpaceSummary, parse_rhythm
from meshcrew.spaces.bodies import SealedBody, parse_body
from meshcrew.store import Replica
from node_processes import (
    Fleet,
    NodeProcess,
    crew_in_process,
    fleet,
    remember,
    start_all,
    wait_for,
)

__all__ = ["fleet"]  # the fixture

MARKER = "MARKER-retention-processes-5c1e"
DAY_MIN = 24 * 60


def daily_ending_in(seconds_from_now: float) -> tuple[str, float]:
    """A daily rhythm whose cycle ends at the first whole minute at least that far away; the
    rhythm's text (``daily+HH:MM``) and when its cycle ends (epoch seconds)."""
    boundary = (int(time.time() + seconds_from_now) // 60 + 1) * 60
    minute_of_day = boundary // 60 % DAY_MIN
    offset = -minute_of_day % DAY_MIN  # midnight at UTC + offset falls on the boundary
    if offset > DAY_MIN // 2:
        offset -= DAY_MIN
    sign = "-" if offset < 0 else "+"
    return f"daily{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}", float(boundary)


def home_bytes(node: NodeProcess) -> bytes:
    """Every file of the member's home folder, end to end."""
    files = sorted(p for p in node.home.path.rglob("*") if p.is_file())
    return b"".join(p.read_bytes() for p in files)


def holds_keys(node: NodeProcess, space: str, members: int) -> bool:
    summary: SpaceSummary = node.call("summary", bytes.fromhex(space))
    return not summary.waiting_for_keys and summary.members == members


def ciphertext_of(node: NodeProcess, record_id: str) -> bytes:
    """The sealed post's ciphertext as the member's replica holds it."""
    with Replica.open(node.home, read_only=True) as replica:
        record = replica.get(bytes.fromhex(record_id))
    assert record is not None
    body = parse_body(record.kind, record.body)
    assert isinstance(body, SealedBody)
    return body.blob


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_an_expired_checkin_leaves_every_members_home_folder(fleet: Fleet) -> None:
    ada, bo, cy, pi = fleet.make("Ada", "Bo", "Cy", "Pi")
    nodes = (ada, bo, cy)
    pi.start("--carrier")
    offer = str(pi.cli("carrier", "offer")["code"])
    # The crew is made offline (its joins over the network are other tests'), so that the
    # boundary can be near: what follows takes 5-15 s here.
    rhythm, ends = daily_ending_in(30)
    space = crew_in_process(ada, bo, cy, rhythm=parse_rhythm(rhythm), keep_checkins=1)
    ada.start()
    for joiner in (bo, cy):
        remember(joiner, ada)
    start_all(bo, cy)
    assert ada.cli("carrier", "add", space, offer)["reached"]
    wait_for(lambda: all(holds_keys(n, space, 3) for n in nodes), within=30,
             what="every member holding the keys")
    marker = str(ada.cli("checkin", space, "--text", MARKER)["id"])
    bo.run("reply", marker[:12], "--text", "heard you, REPLY-retention-5c1e")
    wait_for(lambda: all("heard you, REPLY-retention-5c1e" in n.texts(space) for n in nodes),
             within=30, what="the check-in and its reply on every node")
    assert time.time() < ends - 5, "the cycle ended before the check-in reached everyone"
    blob = ciphertext_of(cy, marker)
    wait_for(lambda: blob in home_bytes(pi), within=max(1.0, ends - time.time() - 2),
             what="the carrier to hold the check-in's ciphertext")
    assert all(blob in home_bytes(n) for n in nodes)  # on every disk until the cycle ends
    assert all(MARKER in n.texts(space) for n in nodes)
    # (a pass runs at least once a minute; a busy machine may make one miss its WAL checkpoint
    # while others read, and the next pass, a minute on, completes it)
    # (the reply, Bo's newest record, goes once his re-posted profile reaches each node: a
    # moment after the check-in on the others)
    wait_for(lambda: all(blob not in home_bytes(n)
                         and "heard you, REPLY-retention-5c1e" not in n.texts(space)
                         for n in nodes),
             within=ends - time.time() + 150,
             what="the check-in's ciphertext and its reply gone from every home folder")
    # The carrier cannot read the settings: a member's node tells it which posts expired once
    # the author's next record (Ada's profile, re-posted) has reached it too.
    wait_for(lambda: blob not in home_bytes(pi), within=60,
             what="the check-in's ciphertext gone from the carrier's home folder")
    with Replica.open(pi.home, read_only=True) as replica:
        held = replica.get(bytes.fromhex(marker))
    assert held is not None
    assert held.expired  # it keeps the husk, which it serves a member catching up
    assert time.time() >= ends  # not before its time
    for node in nodes:
        on_disk = home_bytes(node)
        assert blob not in on_disk
        assert MARKER.encode() not in on_disk
        assert b"REPLY-retention-5c1e" not in on_disk
        texts = node.texts(space)
        assert MARKER not in texts
        assert "heard you, REPLY-retention-5c1e" not in texts  # a reply goes with its post
    wait_for(lambda: len({frontier_of(n, space) for n in nodes}) == 1, within=30,
             what="every replica at the same frontier (Ada's profile, re-posted, included)")


def frontier_of(node: NodeProcess, space: str) -> frozenset[tuple[bytes, int, bytes]]:
    with Replica.open(node.home, read_only=True) as replica:
        return frozenset((author, head.seq, head.id)
                         for author, head in replica.frontier(bytes.fromhex(space)).items())
