"""The node's parts that need no network: control values, peer book, receipts, backoff, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meshcrew.cli.node_link import JoinDisplay
from meshcrew.errors import JoinRefused, LocalProtocolError, RemoteProtocolError, SpaceError
from meshcrew.home import Home
from meshcrew.node.addr_exchange import MAX_PEERS, decode_known
from meshcrew.node.control_client import control_types, rebuild_error
from meshcrew.node.dialer import backoff_s, peer_of
from meshcrew.node.peerbook import MAX_ADDRS, MAX_SYNCED_SPACES, PeerBook, peer_book_file
from meshcrew.node.peerbook import MAX_PEERS as BOOK_LIMIT
from meshcrew.node.receipts import Receipts
from meshcrew.node.reports import JoinProgress, NodeStatus, RecordsChanged
from meshcrew.node.values import ValueTypes, decode, encode
from meshcrew.reasons import Reason
from meshcrew.records import Head
from meshcrew.service import MemberEntry, PostEntry
from meshcrew.spaces import CheckIn, Rhythm, SpaceKind

TYPES = control_types()
PEER = "12D3KooWDGHBYmzxAzjfH7tN3kJ3sQybPLvTswH9D95oKY9uSNKe"


def roundtrip(value: object) -> object:
    return decode(encode(value), TYPES)


def test_control_values_keep_their_types() -> None:
    entry = PostEntry(b"i" * 32, b"s" * 32, "checkin", b"a" * 32, "Ada", 3, 17,
                      {"text": "hi", "energy": 4, "compass": {"belonging": 5}})
    status = NodeStatus("p", b"k" * 32, "Ada", "FP", "/h", ("/ip4/1.2.3.4/tcp/1/p2p/p",), (),
                        (b"s" * 32,), 5, False, 1, (), 0, 0, 0, 0)
    post = CheckIn(text="arriving", energy=2, compass={"belonging": 4})
    value = {"entries": [entry], "status": status, "post": post, "kind": SpaceKind.CREW,
             "reason": Reason.NOT_MEMBER, "rhythm": Rhythm(), "keys": {b"k" * 32: (1, 2)},
             "set": frozenset({b"x"}), "changed": RecordsChanged(frozenset({b"s"}), (b"i",),
                                                                 True, 5)}
    back = roundtrip(value)
    assert back == value
    assert type(back["entries"][0]) is PostEntry  # type: ignore[index]
    assert type(back["kind"]) is SpaceKind  # type: ignore[index]
    assert back["post"].compass["belonging"] == 4  # type: ignore[index]


def test_control_values_refuse_types_not_registered() -> None:
    only_members = ValueTypes([MemberEntry])
    with pytest.raises(LocalProtocolError, match="unknown type"):
        decode(encode(JoinProgress("history")), only_members)
    with pytest.raises(LocalProtocolError):
        decode(b"\xc1", TYPES)
    with pytest.raises(TypeError):
        encode({"f": print})


def test_errors_come_back_as_their_class_with_their_sentence() -> None:
    error = rebuild_error({"type": "JoinRefused", "message": "This invite has expired.",
                           "reason": "invite_expired"})
    assert isinstance(error, JoinRefused)
    assert isinstance(error, SpaceError)
    assert str(error) == "This invite has expired."
    assert error.reason == "invite_expired"  # type: ignore[attr-defined]
    assert type(rebuild_error({"type": "NoSuchError", "message": "x"})).__name__ == \
        "MeshcrewError"
    assert isinstance(rebuild_error("junk"), LocalProtocolError)


def test_the_peer_book_survives_a_restart_and_bounds_itself(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.ensure()
    book = PeerBook.load(home)
    addrs = [f"/ip4/10.0.0.{n}/tcp/4001/p2p/{PEER}" for n in range(MAX_ADDRS + 3)]
    book.learn(PEER, addrs, source="invite")
    book.learn(PEER, ["/ip4/10.0.0.1/tcp/1/p2p/someone-else"], source="mdns")  # not its id
    book.seen(PEER, 1234)
    book.listen_port = 4001
    book.set_banned(frozenset({"12D3KooWBanned"}))
    book.save()
    assert peer_book_file(home).stat().st_mode & 0o777 == 0o600
    again = PeerBook.load(home)
    entry = again.get(PEER)
    assert entry is not None
    assert entry.addrs == addrs[:MAX_ADDRS]
    assert entry.source == "invite"
    assert entry.last_seen_ms == 1234
    assert again.listen_port == 4001
    assert again.banned == {"12D3KooWBanned"}
    for n in range(BOOK_LIMIT + 5):
        again.seen(f"peer{n}", 10_000 + n)
    assert len(again.entries()) == BOOK_LIMIT
    assert again.get(PEER) is None  # the least recently seen went first


def test_the_peer_book_keeps_when_each_peer_and_space_was_last_synced(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.ensure()
    book = PeerBook.load(home)
    book.seen(PEER, 1000)
    assert book.last_sync_ms() is None
    assert book.get(PEER).last_sync_ms is None  # type: ignore[union-attr]
    space_a, space_b = b"a" * 32, b"b" * 32
    book.synced(PEER, [space_a, space_b], 2000)
    book.synced(PEER, [space_a], 3000)  # b stopped at the cap this time: not level
    book.synced("12D3KooWOther", [], 2500)  # a session that left no space level still counts
    book.save()
    again = PeerBook.load(home)
    entry = again.get(PEER)
    assert entry is not None
    assert entry.last_sync_ms == 3000
    assert entry.spaces_synced == {space_a: 3000, space_b: 2000}
    assert entry.last_seen_ms == 1000
    assert again.get("12D3KooWOther").last_sync_ms == 2500  # type: ignore[union-attr]
    assert again.last_sync_ms() == 3000
    many = [bytes([n]) * 32 for n in range(MAX_SYNCED_SPACES + 3)]
    for n, space in enumerate(many):
        again.synced(PEER, [space], 10_000 + n)
    assert len(entry.spaces_synced) == MAX_SYNCED_SPACES
    assert set(entry.spaces_synced) == set(many[3:])  # the longest unsynced went first


def test_a_damaged_peer_book_is_set_aside(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.ensure()
    peer_book_file(home).write_text("{not json")
    book = PeerBook.load(home)
    assert book.entries() == []
    assert book.listen_port is None
    assert (home.path / "peers.json.damaged").exists()
    peer_book_file(home).write_text(json.dumps({"version": 99}))
    assert PeerBook.load(home).entries() == []


def test_receipts_say_who_holds_a_record_and_what_each_lacks(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.ensure()
    space, ada, bo, cy = b"s" * 32, b"a" * 32, b"b" * 32, b"c" * 32
    receipts = Receipts.load(home)
    receipts.note_frontier(space, bo, {ada: Head(3, b"3" * 32)})
    receipts.note_frontier(space, bo, {ada: Head(2, b"2" * 32)})  # older news does not undo
    receipts.note_author_holds(space, cy, Head(1, b"c" * 32))
    assert receipts.holders(space, ada, 3) == [bo]
    assert receipts.holders(space, ada, 4) == []
    assert receipts.holders(space, cy, 1) == [cy]
    ours = {ada: Head(5, b"5" * 32), cy: Head(1, b"c" * 32)}
    assert receipts.lacks(space, bo, ours) == 3
    assert receipts.lacks(space, b"x" * 32, ours) is None
    receipts.save()
    assert Receipts.load(home).holders(space, ada, 3) == [bo]


def test_backoff_doubles_to_a_cap_and_addresses_name_their_peer() -> None:
    waits = [backoff_s(n, low=1.0, high=60.0, jitter=1.0) for n in range(1, 10)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert waits[-1] == 60.0
    assert backoff_s(3, low=1.0, high=60.0, jitter=0.5) == 2.0
    assert peer_of(f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}") == PEER
    assert peer_of("/ip4/127.0.0.1/tcp/1") is None


def test_address_exchange_messages_are_checked() -> None:
    good = decode_known([0, [[PEER, [f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}", "/ip4/1.2.3.4/tcp/2"]]]])
    assert good == {PEER: [f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}"]}  # only its own addresses
    for bad in ([1, []], [0, "x"], [0, [[PEER, ["a"] * (MAX_ADDRS + 1)]]],
                [0, [[PEER, ["x"]]] * (MAX_PEERS + 1)], [0, [[1, []]]]):
        with pytest.raises(RemoteProtocolError):
            decode_known(bad)


def test_join_progress_display_when_no_member_answers_at_the_codes_addresses() -> None:
    err = io.StringIO()
    show = JoinDisplay(err)
    for step in (JoinProgress("dialling", PEER), JoinProgress("looking_on_lan"),
                 JoinProgress("looking_on_lan")):
        show(step)
    assert err.getvalue().splitlines() == [
        f"Reaching {PEER}…",
        "No member answered at the code's addresses; looking for one on the LAN and among "
        "known peers…"]


def test_join_progress_display() -> None:
    err = io.StringIO()
    show = JoinDisplay(err)
    for step in (JoinProgress("dialling", PEER), JoinProgress("asking", PEER),
                 JoinProgress("history", PEER, 0, 1000), JoinProgress("history", PEER, 512, 1000),
                 JoinProgress("history", PEER, 1000, 1000), JoinProgress("joined", PEER),
                 JoinProgress("keys", PEER)):
        show(step)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("Reaching")
    assert "0/1,000" in lines[2]
    assert "1,000/1,000" in lines[3]
    assert not any("512" in line for line in lines)
    assert lines[-1].startswith("The keys arrived")


def test_status_and_peers_without_a_running_node(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from meshcrew.cli import main

    home = tmp_path / "h"
    assert main(["--home", str(home), "init", "--name", "Ada"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "status", "--json"]) == 1
    assert "No node is running" in capsys.readouterr().err
    book = PeerBook.load(Home(home))
    book.learn(PEER, [f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}"], source="invite")
    book.seen(PEER, 1234)
    book.save()
    assert main(["--home", str(home), "peers", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["running"] is False
    [peer] = listed["peers"]
    assert peer["peer_id"] == PEER
    assert peer["connected"] is False
    assert peer["last_seen_ms"] == 1234
    assert main(["--home", str(home), "connect", f"/ip4/10.0.0.1/tcp/1/p2p/{PEER}"]) == 1
    assert "No node is running" in capsys.readouterr().err
