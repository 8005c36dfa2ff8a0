"""A join whose inviter stops answering at the worst moment ends by itself, within its stated
deadline (``join_timeout_s``), with a clear refusal: every wait on the way is bounded.

The inviter here is a real host on loopback serving the real join server over the founder's
replica; only its last step never comes: it reads the joiner's join and answers nothing, as a
node that froze there would (SIGSTOPped, or a laptop closed: no reset ever reaches the joiner).
By then the joiner has received the history and signed its join.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import LOOPBACK
from meshcrew.errors import JoinRefused
from meshcrew.net import open_host
from meshcrew.node import ControlClient, control_types, open_node
from meshcrew.node.join import JOIN_PROTOCOL, Admission, JoinServer
from meshcrew.node.reports import JoinProgress
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.service import Member
from meshcrew.spaces import RecordKind, decode_invite_code, encode_invite_code, invite_problem
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, make_home, wall_ms

pytestmark = pytest.mark.trio

JOIN_TIMEOUT_S = 4.0
READ_TIMEOUT_S = 1.0


def freezing_join_server(ada: Member, replica: Replica, frozen: trio.Event) -> JoinServer:
    """Ada's real join server, but for its last step: once it has read the joiner's join it
    sets ``frozen`` and answers nothing, as a node that froze there would."""

    def check_invite(space_id: bytes, invite_id: bytes) -> tuple[bytes | None, Reason | None]:
        state = ada.view(space_id).state
        invite = state.invites.get(invite_id)
        return (invite.public_key if invite else None,
                invite_problem(state, invite_id, wall_ms()))

    async def admit(join: Record, sender: str) -> Admission:
        frozen.set()
        await trio.sleep_forever()  # the inviter froze: no welcome, no reset
        raise AssertionError("unreachable")

    return JoinServer(replica, is_active=lambda space_id: True, check_invite=check_invite,
                      admit=admit, penalize=lambda peer, points, why: None)


async def test_a_join_whose_inviter_freezes_after_the_history_ends_within_its_deadline(
        tmp_path: Path) -> None:
    ada_home, ada_who = make_home(tmp_path, "Ada")
    bo_home, bo_who = make_home(tmp_path, "Bo")
    net = replace(LOOPBACK, read_timeout_s=READ_TIMEOUT_S, shutdown_timeout_s=1.0)
    with Replica.open(ada_home) as replica:
        ada = Member(replica, ada_who, clock=wall_ms)
        space = ada.create_space("Crew")
        ada.checkin(space, text="before you came", energy=3)
        frozen = trio.Event()
        server = freezing_join_server(ada, replica, frozen)
        async with open_host(ada_who, net) as host:
            host.set_stream_handler(JOIN_PROTOCOL, server.serve)
            code = ada.invite(space, expires_ms=wall_ms() + 3_600_000,
                              addrs=tuple(host.listen_addrs()))
            config = replace(LOOPBACK_NODE, join_timeout_s=JOIN_TIMEOUT_S, net=net)
            async with open_node(bo_home, bo_who, config) as bo:
                stages: list[str] = []

                async def progress(step: JoinProgress) -> None:
                    stages.append(step.stage)

                started = time.monotonic()
                with trio.fail_after(JOIN_TIMEOUT_S + 10), \
                        pytest.raises(JoinRefused, match="No member of this space could be "
                                                         "reached") as refused:
                    await bo.join(code, progress)
                took = time.monotonic() - started
                assert frozen.is_set(), "the inviter never got the join: not the worst moment"
                assert "history" in stages
                assert refused.value.reason == "unreachable"
                assert JOIN_TIMEOUT_S - 0.5 < took < JOIN_TIMEOUT_S + 5


async def test_a_join_cut_off_after_signing_goes_on_with_another_member(tmp_path: Path) -> None:
    """The inviter freezes once the joiner has signed its join; the next member in the code
    (Cy, a real node) takes the same join in: the joiner sends it again, not a second one."""
    ada_home, ada_who = make_home(tmp_path, "Ada")
    bo_home, bo_who = make_home(tmp_path, "Bo")
    cy_home, cy_who = make_home(tmp_path, "Cy")
    net = replace(LOOPBACK, read_timeout_s=READ_TIMEOUT_S, shutdown_timeout_s=1.0)
    with Replica.open(ada_home) as replica:
        ada = Member(replica, ada_who, clock=wall_ms)
        space = ada.create_space("Crew")
        with Replica.open(cy_home) as cy_replica:  # Cy joined by file, Ada let him in
            cy = Member(cy_replica, cy_who, clock=wall_ms)
            cy_code = ada.invite(space, expires_ms=wall_ms() + 3_600_000)
            cy.ingest(ada.export(space), sender="file")
            cy.join(cy_code)
            ada.ingest(cy.export(space), sender="file")
            code = decode_invite_code(ada.invite(space, expires_ms=wall_ms() + 3_600_000))
            cy.ingest(ada.export(space), sender="file")  # Cy knows Bo's invite
        frozen = trio.Event()
        server = freezing_join_server(ada, replica, frozen)
        config = replace(LOOPBACK_NODE, join_timeout_s=20.0, keys_timeout_s=0.5, net=net)
        async with open_host(ada_who, net) as host, \
                open_node(cy_home, cy_who, config) as cy_node, \
                open_node(bo_home, bo_who, config) as bo:
            host.set_stream_handler(JOIN_PROTOCOL, server.serve)
            addrs = (*host.listen_addrs(), *cy_node.addrs())
            with trio.fail_after(30):
                result = await bo.join(encode_invite_code(replace(code, addrs=addrs)))
            assert frozen.is_set(), "Ada never got the join: not the case under test"
            assert result.space == space
            assert result.via == cy_node.host.peer_id
            mine = [r for r in bo.replica.records_after(space, {}, limit=1000)
                    if r.author == bo_who.public_key]
            assert [r.kind for r in mine] == [RecordKind.JOIN]  # one join, sent twice


async def test_a_join_no_member_took_in_goes_again_when_the_code_is_run_again(
        tmp_path: Path) -> None:
    """The inviter froze once Bo had signed, and no other member was there: his join stands in
    his replica only (members turn a stranger's sync away, so nothing carries it). Running the
    code again, through his node's control socket as ``meshcrew join`` does, sends that join to
    Ada's node, back now: Ada takes it in and rotates the keys, where it said 'You are already
    a member of this space.' and Bo was stranded."""
    ada_home, ada_who = make_home(tmp_path, "Ada")
    bo_home, bo_who = make_home(tmp_path, "Bo")
    net = replace(LOOPBACK, read_timeout_s=READ_TIMEOUT_S, shutdown_timeout_s=1.0)
    config = replace(LOOPBACK_NODE, join_timeout_s=2.0, net=net)
    with Replica.open(ada_home) as replica:
        ada = Member(replica, ada_who, clock=wall_ms)
        space = ada.create_space("Crew")
        frozen = trio.Event()
        server = freezing_join_server(ada, replica, frozen)
        async with open_host(ada_who, net) as host:
            host.set_stream_handler(JOIN_PROTOCOL, server.serve)
            code = ada.invite(space, expires_ms=wall_ms() + 3_600_000,
                              addrs=tuple(host.listen_addrs()))
            async with open_node(bo_home, bo_who, config) as bo:
                with trio.fail_after(20), pytest.raises(JoinRefused):
                    await bo.join(code)
        assert frozen.is_set()
    async with open_node(ada_home, ada_who, config) as ada_node, \
            open_node(bo_home, bo_who, config) as bo:
        await bo.connect(ada_node.addrs()[0])  # (Ada's node is on a new port)
        client = ControlClient.if_running(bo.home, control_types())
        assert client is not None
        with trio.fail_after(30):
            joined = await trio.to_thread.run_sync(client.call, "join", code)
        assert joined == space
        assert bo_who.public_key in ada_node.membership.active(space)
        assert not bo.member.summary(space).waiting_for_keys
        mine = [r for r in bo.replica.records_after(space, {}, limit=1000)
                if r.author == bo_who.public_key]
        assert [r.kind for r in mine].count(RecordKind.JOIN) == 1  # the same join
