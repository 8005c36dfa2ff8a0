"""Nodes in one process on loopback: joining, refusals, gossip judgement, the control socket."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import LOOPBACK, wait_until
from meshcrew.errors import (
    DialError,
    JoinRefused,
    ListenError,
    LocalProtocolError,
    MeshcrewError,
    UnknownName,
)
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net import SyncService, Verdict, open_host
from meshcrew.node import ControlClient, NodeConfig, control_types, open_node
from meshcrew.node.join import ASK, JOIN_PROTOCOL, JOIN_VERSION, REFUSED, Messages, encode_frame
from meshcrew.node.membership import GossipJudge
from meshcrew.node.peerbook import peer_book_file
from meshcrew.node.reports import JoinProgress
from meshcrew.records import MAX_CLOCK_SKEW_MS, Head, Record, sign_record
from meshcrew.service import Member
from meshcrew.spaces import decode_invite_code, join_space
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, crew_by_file, make_home, open_nodes, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000


def texts(node: object, space: bytes) -> set[str]:
    return {str(p.fields.get("text")) for p in node.member.log(space)}  # type: ignore[attr-defined]


async def test_a_joiner_gets_the_history_the_keys_and_then_live_records(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Bo") as [ada, bo]:
            space = ada.member.create_space("Crew")
            ada.member.checkin(space, text="before you came", energy=3)
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            steps: list[str] = []

            async def progress(step: object) -> None:
                steps.append(step.stage)  # type: ignore[attr-defined]

            result = await bo.join(code, progress)
            assert result.space == space
            assert result.has_keys
            assert result.via == ada.host.peer_id
            assert steps[:3] == ["dialling", "asking", "history"]
            assert steps[-2:] == ["joined", "keys"]
            assert "before you came" in texts(bo, space)  # history is readable: keys arrived
            bo_id = bo.member.checkin(space, text="hello", energy=4)
            ada.member.checkin(space, text="welcome", energy=5)
            await wait_until(lambda: "hello" in texts(ada, space) and "welcome" in texts(bo, space))
            # the post-publish sync tells Bo who holds his check-in
            await wait_until(lambda: ada.identity.public_key in bo.seen_by(bo_id))
            [peer] = bo.peers()
            assert peer.connected
            assert peer.name == "Ada"
            assert peer.spaces[0].synced


async def test_a_join_skips_nodes_outside_the_space(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Stranger", "Bo") as [ada, stranger, bo]:
            space = ada.member.create_space("Crew")
            addrs = (*stranger.addrs(), *ada.addrs())  # the first node asked says not_here
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=addrs)
            result = await bo.join(code)
            assert result.via == ada.host.peer_id
            assert stranger.replica.spaces() == []


async def test_a_used_invite_is_refused_with_its_reason(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Bo", "Cy") as [ada, bo, cy]:
            space = ada.member.create_space("Crew")
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            await bo.join(code)
            with pytest.raises(JoinRefused, match="already been used") as refused:
                await cy.join(code)
            assert refused.value.reason == "invite_exhausted"
            assert cy.identity.public_key not in ada.membership.active(space)


async def test_a_wrong_proof_is_refused_and_costs_points(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Mallory") as [ada, mallory]:
            space = ada.member.create_space("Crew")
            code = decode_invite_code(ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS))
            await mallory.host.connect(ada.addrs()[0])
            stream = await mallory.host.open_stream(ada.host.peer_id, JOIN_PROTOCOL)
            await stream.send_all(encode_frame([ASK, JOIN_VERSION, space, code.invite_id,
                                                bytes(64)]))
            reply = await Messages(stream).next()
            assert reply[:2] == [REFUSED, "invite_bad_proof"]
            assert ada.host.scores.points(mallory.host.peer_id, time.monotonic()) > 0


async def test_a_join_with_no_reachable_member_says_so(tmp_path: Path) -> None:
    config = NodeConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",), mdns=False, join_timeout_s=1.0)
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Bo", config=config) as [ada, bo]:
            space = ada.member.create_space("Crew")
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS)  # no addresses
            steps: list[JoinProgress] = []

            async def progress(step: JoinProgress) -> None:
                steps.append(step)

            with pytest.raises(JoinRefused, match="could be reached") as refused:
                await bo.join(code, progress)
            assert refused.value.reason == "unreachable"
            # it says it looks on the LAN (once per wait), not that it dials a peer called so
            assert {step.stage for step in steps} <= {"dialling", "looking_on_lan"}
            assert JoinProgress("looking_on_lan") in steps


async def test_connecting_to_an_address_where_no_such_peer_answers_says_what_to_check(
        tmp_path: Path) -> None:
    """Said before: 'Failed dialling ...: SwarmDialAllFailedError: unable to connect to ...'."""
    config = NodeConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",), mdns=False)
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Bo", config=config) as [ada, bo]:
            stranger = Identity.generate("Stranger").peer_id
            wrong_peer = bo.addrs()[0].replace(bo.host.peer_id, stranger)
            for addr in (wrong_peer, f"/ip4/127.0.0.1/tcp/9/p2p/{bo.host.peer_id}"):
                with pytest.raises(DialError, match="check that its node is running") as failed:
                    await ada.connect(addr)
                assert str(failed.value).startswith(f"No node at {addr} answered")
                assert "Swarm" not in str(failed.value)


async def test_a_listen_address_this_machine_lacks_is_refused(tmp_path: Path) -> None:
    """libp2p only logs an address it cannot bind: the node ran, listening nowhere."""
    config = NodeConfig(listen_addrs=("/ip4/203.0.113.77/tcp/0",), mdns=False)  # TEST-NET-3
    with trio.fail_after(30), \
            pytest.raises(ListenError, match=r"this machine has no address 203\.0\.113\.77"):
        async with open_node(Home(tmp_path / "ada"), Identity.generate("Ada"), config,
                             control=False):
            pass


async def test_the_gossip_judge(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada", "Bo", "Eve") as [ada, bo, eve]:
            space = ada.member.create_space("Crew")
            other = ada.member.create_space("Other")
            invite = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS)
            judge = GossipJudge(ada.membership, wall_ms)
            mine = ada.replica.frontier(space)[ada.identity.public_key]
            record = ada.replica.get(mine.id)
            assert record is not None
            ada_peer, eve_peer = ada.host.peer_id, eve.host.peer_id

            def by(who: object, space_id: bytes, ts: int | None = None, kind: str = "x.note",
                   body: bytes = b"") -> bytes:
                key = who.identity.signing_key  # type: ignore[attr-defined]
                return sign_record(key, kind=kind, space=space_id, seq=1, prev=None,
                                   ts=ts or wall_ms(), body=body).raw

            assert judge(space, record.raw, ada_peer) is Verdict.ACCEPT
            forged = record.raw[:-1] + bytes([record.raw[-1] ^ 1])  # (not "set it to 0": it
            assert judge(space, forged, ada_peer) is Verdict.REJECT  # may be 0 already)
            assert judge(other, record.raw, ada_peer) is Verdict.REJECT  # another space's
            assert judge(space, b"junk", ada_peer) is Verdict.REJECT
            assert judge(space, by(eve, space), ada_peer) is Verdict.IGNORE  # a member relays
            assert judge(space, by(eve, space), eve_peer) is Verdict.REJECT  # nobody vouches
            future = wall_ms() + MAX_CLOCK_SKEW_MS + HOUR_MS
            assert judge(space, by(ada, space, ts=future), ada_peer) is Verdict.IGNORE
            assert judge(space, by(ada, space, ts=future), eve_peer) is Verdict.REJECT
            made = join_space(decode_invite_code(invite), bo.identity.signing_key)
            join = by(bo, space, kind=made.kind, body=made.body)
            assert judge(space, join, bo.host.peer_id) is Verdict.ACCEPT
            assert judge(space, by(bo, space), bo.host.peer_id) is Verdict.ACCEPT  # counted


async def test_a_member_back_on_its_remembered_address_is_redialled(tmp_path: Path) -> None:
    """Nobody calls connect: Ada's dialer keeps trying Bo's address from her peer book, with a
    growing wait, and reaches him once his node is back there; they converge."""
    ada_home, ada_who, bo_home, bo_who, [space] = crew_by_file(
        tmp_path, then=lambda ada, bo, spaces: bo.ingest(ada.export(spaces[0]), sender="file"))
    assert LOOPBACK_NODE.redial_max_s <= 2.0
    with trio.fail_after(40):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            async with open_node(bo_home, bo_who, LOOPBACK_NODE) as bo:
                bo_peer, bo_addr = bo.host.peer_id, bo.addrs()[0]
                await ada.connect(bo_addr)  # Ada's peer book remembers where Bo was
            dialer = ada.contacts.dialer
            await wait_until(lambda: dialer.failures(bo_peer) >= 3, within=10)
            ada.member.checkin(space, text="while Bo was away", energy=3)
            # Bo comes back at the same address remembering no peer: only Ada can dial.
            peer_book_file(bo_home).unlink()
            back = replace(LOOPBACK_NODE, listen_addrs=(bo_addr.split("/p2p/")[0],))
            async with open_node(bo_home, bo_who, back) as bo:
                assert bo.book.entries() == []
                # (connected_peers lists Bo a moment before the dial returns and clears the
                # failures, and a first connection may break in its upgrade: wait for both)
                await wait_until(lambda: bo_peer in ada.host.connected_peers()
                                 and dialer.failures(bo_peer) == 0,
                                 within=2 * LOOPBACK_NODE.redial_max_s + 3)
                await wait_until(lambda: "while Bo was away" in texts(bo, space), within=10)


class ForgingSource:
    """A member's replica as a hostile peer serves it: its frontier is true, but the records it
    sends carry broken signatures, ``budget`` of them in all (whichever sessions ask)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.budget = 0

    def frontier(self, space_id: bytes) -> Mapping[bytes, Head]:
        return self.replica.frontier(space_id)

    def records_after(self, space_id: bytes, theirs: Mapping[bytes, Head], *,
                      limit: int) -> list[Record]:
        if self.budget <= 0:
            return []
        found = list(self.replica.records_after(space_id, theirs,
                                                limit=min(limit, self.budget)))
        self.budget -= len(found)
        return [dataclasses.replace(r, raw=r.raw[:-1] + bytes([r.raw[-1] ^ 1])) for r in found]


async def keep_nothing(peer_id: str, event: object) -> None:
    """A sync event handler that stores nothing."""


async def test_a_peer_serving_forged_records_by_sync_loses_points_and_is_banned(
        tmp_path: Path) -> None:
    """docs/sync.md: a record from sync refused by the replica costs 10 points; at 100 points
    the peer is banned (disconnected and refused). The numbers are the documented ones."""

    def bo_writes_what_ada_lacks(ada: Member, bo: Member, spaces: list[bytes]) -> None:
        bo.ingest(ada.export(spaces[0]), sender="file")
        ada.ingest(bo.export(spaces[0]), sender="file")  # Bo's profile
        for n in range(12):  # what Ada lacks, to be served forged
            bo.checkin(spaces[0], text=f"check-in {n}", energy=3)

    ada_home, ada_who, bo_home, bo_who, [space] = crew_by_file(
        tmp_path, then=bo_writes_what_ada_lacks)
    with trio.fail_after(30):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            with Replica.open(bo_home) as bo_replica:
                source = ForgingSource(bo_replica)
                async with open_host(bo_who, LOOPBACK) as host, trio.open_nursery() as nursery:
                    sync = SyncService(host, source, lambda: [space], lambda s, k: True,
                                       keep_nothing)
                    await nursery.start(sync.run)
                    await host.connect(ada.addrs()[0])
                    bo_peer = host.peer_id

                    def points() -> float:
                        return ada.host.scores.points(bo_peer, time.monotonic())

                    async def serve(count: int) -> None:
                        source.budget = count
                        await sync.sync_with(ada.host.peer_id)
                        assert source.budget == 0

                    await serve(1)
                    await wait_until(lambda: points() > 0)
                    assert 9.5 < points() <= 10.0  # 10 points, less a minute's drain
                    await serve(8)
                    await wait_until(lambda: points() > 85)
                    assert 85 < points() < 100
                    assert not ada.host.scores.is_banned(bo_peer)
                    assert bo_peer in ada.host.connected_peers()
                    with contextlib.suppress(MeshcrewError):  # the ban may cut the session
                        await serve(2)
                    await wait_until(lambda: ada.host.scores.is_banned(bo_peer))
                    await wait_until(lambda: bo_peer not in ada.host.connected_peers())

                    async def again() -> None:
                        await host.connect(ada.addrs()[0])
                        await sync.sync_with(ada.host.peer_id)

                    with pytest.raises(MeshcrewError):  # refused while banned
                        await again()
                    assert ada.replica.frontier(space)[bo_who.public_key].seq < \
                        bo_replica.frontier(space)[bo_who.public_key].seq  # none taken
                    nursery.cancel_scope.cancel()


async def test_a_restarted_node_keeps_its_port_peers_and_bans(tmp_path: Path) -> None:
    home, who = make_home(tmp_path, "Ada")
    config = NodeConfig(mdns=False)  # no listen address: every interface, the remembered port
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Bo") as [bo]:
            async with open_node(home, who, config) as ada:
                port = ada.host.listen_port()
                await ada.connect(bo.addrs()[0])
                ada.host.penalize("12D3KooWDGHBYmzxAzjfH7tN3kJ3sQybPLvTswH9D95oKY9uSNKe", 100, "t")
            async with open_node(home, who, config) as ada:
                assert ada.host.listen_port() == port
                assert ada.book.get(bo.host.peer_id) is not None
                assert ada.host.scores.is_banned(
                    "12D3KooWDGHBYmzxAzjfH7tN3kJ3sQybPLvTswH9D95oKY9uSNKe")


async def test_the_control_socket_runs_member_calls_and_node_calls(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada") as [ada]:
            client = ControlClient.if_running(ada.home, control_types())
            assert client is not None
            assert oct(os.stat(ada.home.socket_file).st_mode & 0o777) == "0o600"

            def from_the_cli() -> None:
                space = client.call("create_space", "Crew")
                assert client.call("summary", space).name == "Crew"
                assert client.call("status").peer_id == ada.host.peer_id
                code = client.call("invite", space, expires_ms=wall_ms() + HOUR_MS)
                assert decode_invite_code(code).addrs == ada.addrs()  # the node's addresses
                with pytest.raises(UnknownName):
                    client.call("resolve_space", "no such crew")
                with pytest.raises(LocalProtocolError, match="no operation"):
                    client.call("view", space)

            await trio.to_thread.run_sync(from_the_cli)
        assert ControlClient.if_running(ada.home, control_types()) is None


async def test_a_node_refuses_a_second_node_on_its_home(tmp_path: Path) -> None:
    from meshcrew.errors import HomeError

    home, who = make_home(tmp_path, "Ada")
    with trio.fail_after(20):
        async with open_node(home, who, LOOPBACK_NODE):
            with pytest.raises(HomeError, match="Another meshcrew"):
                async with open_node(home, who, LOOPBACK_NODE):
                    pass


async def test_a_join_that_lapses_while_waiting_for_keys_is_refused(tmp_path: Path) -> None:
    # Cy (a member) lets Bo in by the handshake while the invite is open by her clock; Ada,
    # who made the invite, takes the join in only after it expired by hers (five minutes
    # ahead, within the allowed skew), so her rotation leaves Bo out and the join lapses.
    ahead = [0]
    with trio.fail_after(45):
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for name, clock in (("Ada", lambda: wall_ms() + ahead[0]), ("Cy", wall_ms),
                                ("Bo", wall_ms)):
                home, who = make_home(tmp_path, name)
                nodes.append(await stack.enter_async_context(
                    open_node(home, who, LOOPBACK_NODE, clock=clock)))
            ada, cy, bo = nodes
            space = ada.member.create_space("Crew")
            await cy.join(ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS,
                                            addrs=ada.addrs()))
            code = ada.member.invite(space, expires_ms=wall_ms() + 60_000, addrs=cy.addrs())
            ahead[0] = 5 * 60_000
            with pytest.raises(JoinRefused, match="too late") as refused:
                await bo.join(code)
            assert refused.value.reason == "invite_expired"
            assert bo.member.summary(space).my_status == "outsider"
            assert bo.identity.public_key not in ada.membership.active(space)
