"""Joining a space over the network: find a member's node, run the handshake, wait for keys.

The node tries, in order, until one lets it in or ``join_timeout_s`` passes:

1. the addresses in the invite code (the inviter's node when the code was made);
2. peers heard of on the LAN (mDNS), waiting for more while time remains;
3. peers it is connected to, then every peer in its peer book.

A node that is not in the space says so (``not_here``) and the next is tried, as is the next
after a handshake that broke off (a member that stopped or froze: the join, once signed, is sent
again as it is); a refusal of the invite itself (used up, expired, wrong) ends the join. Once
in, the node syncs with that member and waits up to ``keys_timeout_s`` for the keys, which the
invite's maker shares when its node takes in the join (usually within the handshake itself).
A join that lapses meanwhile (the inviter's node let nobody in after the invite's expiry) is
refused ``invite_expired``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import trio

from meshcrew.errors import JoinRefused, MeshcrewError, NetError, RemoteProtocolError, SpaceError
from meshcrew.node.dialer import peer_of
from meshcrew.node.join import JOIN_PROTOCOL, NOT_HERE, ask_to_join
from meshcrew.node.reports import JoinProgress, JoinResult, NodeEvent, RecordsChanged
from meshcrew.reasons import Reason
from meshcrew.spaces import RecordKind, decode_invite_code

if TYPE_CHECKING:
    from meshcrew.identity import Identity
    from meshcrew.net import Host, SyncService
    from meshcrew.node.config import NodeConfig
    from meshcrew.node.contacts import Contacts
    from meshcrew.node.membership import Membership
    from meshcrew.node.peerbook import PeerBook
    from meshcrew.service import Member
    from meshcrew.store import Replica

log = logging.getLogger("meshcrew.node")


class JoiningNode(Protocol):
    """What a join uses of its node (:class:`meshcrew.node.node.Node` is one): who the member
    is and where, the peers to ask, a way to take records in, and the node's events."""

    @property
    def identity(self) -> Identity: ...
    @property
    def config(self) -> NodeConfig: ...
    @property
    def membership(self) -> Membership: ...
    @property
    def member(self) -> Member: ...
    @property
    def replica(self) -> Replica: ...
    @property
    def book(self) -> PeerBook: ...
    @property
    def host(self) -> Host: ...
    @property
    def contacts(self) -> Contacts: ...
    @property
    def sync(self) -> SyncService: ...
    def take(self, raws: list[bytes], *, sender: str, propagate: bool) -> list[bytes]: ...
    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[NodeEvent]: ...


class Joining:
    """One join of one invite code by one node."""

    def __init__(self, node: JoiningNode, code: str,
                 progress: Callable[[JoinProgress], Awaitable[None]] | None) -> None:
        self._node = node
        self._text = code
        self._code = decode_invite_code(code)
        self._progress = progress
        self._tried: set[str] = set()
        self._signed: bytes | None = None
        """This member's join, once signed: a member asked next gets the same one."""

    async def _say(self, stage: str, detail: str = "", done: int = 0, total: int = 0) -> None:
        if self._progress is not None:
            await self._progress(JoinProgress(stage, detail, done, total))

    def _candidates(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Peers not tried yet, best first, with addresses to dial them at."""
        node = self._node
        by_peer: dict[str, list[str]] = {}
        for addr in self._code.addrs:
            peer_id = peer_of(addr)
            if peer_id is not None:
                by_peer.setdefault(peer_id, []).append(addr)
        for peer_id, addrs in by_peer.items():
            yield peer_id, tuple(addrs)
        for peer_id, lan in dict(node.contacts.lan_peers).items():
            yield peer_id, lan.addrs
        for peer_id in node.host.connected_peers():
            yield peer_id, ()
        for entry in node.book.entries():
            yield entry.peer_id, tuple(entry.addrs)

    async def run(self) -> JoinResult:
        """Join, or raise :class:`~meshcrew.errors.JoinRefused` / ``SpaceError``."""
        node = self._node
        space_id = self._code.space_id
        if node.identity.public_key in node.membership.active(space_id):
            self._signed = self._join_no_member_took(space_id)
            if self._signed is None:
                raise SpaceError("You are already a member of this space.")
        with trio.move_on_after(node.config.join_timeout_s):
            while True:
                for peer_id, addrs in self._candidates():
                    if peer_id in self._tried or peer_id == node.host.peer_id:
                        continue
                    self._tried.add(peer_id)
                    received = await self._try(peer_id, addrs)
                    if received is not None:
                        return await self._finish(peer_id, received)
                if node.config.mdns_on_demand:
                    node.contacts.start_lan()
                await self._say("looking_on_lan")
                await node.contacts.wait_lan_peer()
        raise JoinRefused("No member of this space could be reached: the inviter's node is not "
                          "running at the addresses in the code, and no member was found on "
                          "the LAN or among known peers. Try again when the inviter is online, "
                          "or use their export file (meshcrew join CODE --from FILE).")

    def _join_no_member_took(self, space_id: bytes) -> bytes | None:
        """This member's join, when it is its only record in the space and no keys came: a
        join signed in an earlier try whose member stopped answering before it took the join
        in (no sync carries it: members turn a stranger's sessions away). It is sent again."""
        node = self._node
        head = node.replica.frontier(space_id).get(node.identity.public_key)
        record = node.replica.get(head.id) if head is not None else None
        if record is None or record.kind != RecordKind.JOIN or \
                not node.member.summary(space_id).waiting_for_keys:
            return None
        return record.raw

    async def _try(self, peer_id: str, addrs: tuple[str, ...]) -> int | None:
        """Run the handshake with one peer; the records received, or None to try the next."""
        node = self._node
        await self._say("dialling", peer_id)
        if not await node.contacts.dialer.dial(peer_id, addrs, source="invite"):
            return None
        await self._say("asking", peer_id)
        try:
            stream = await node.host.open_stream(peer_id, JOIN_PROTOCOL)
        except NetError as exc:
            log.info("cannot ask %s to join: %s", peer_id, exc)
            return None

        async def take(raws: list[bytes]) -> None:
            node.take(raws, sender=peer_id, propagate=False)

        async def sign_join() -> bytes:
            # Signed once: when a member cut the handshake off after it (it froze or stopped
            # before its welcome), the next one is sent the same join; the member service
            # refuses a second ('already a member').
            if self._signed is None:
                space_id = node.member.join(self._text)
                head = node.replica.frontier(space_id)[node.identity.public_key]
                record = node.replica.get(head.id)
                assert record is not None  # just appended
                self._signed = record.raw
            return self._signed

        async def on_history(done: int, total: int) -> None:
            await self._say("history", peer_id, done, total)

        try:
            return await ask_to_join(stream, self._code, node.identity.public_key, take=take,
                                     sign_join=sign_join, on_history=on_history)
        except JoinRefused as exc:
            if exc.reason == NOT_HERE:
                return None
            raise
        except (NetError, RemoteProtocolError) as exc:
            log.info("joining through %s failed: %s", peer_id, exc)
            await stream.reset()
            return None
        except MeshcrewError:
            await stream.reset()
            raise

    async def _finish(self, peer_id: str, received: int) -> JoinResult:
        node = self._node
        space_id = self._code.space_id
        await self._say("joined", peer_id, received, received)
        node.sync.sync_soon(peer_id)
        events = node.subscribe()
        with events, trio.move_on_after(node.config.keys_timeout_s):
            while node.member.summary(space_id).waiting_for_keys:
                event = await events.receive()
                while not (isinstance(event, RecordsChanged) and space_id in event.spaces):
                    event = await events.receive()
        summary = node.member.summary(space_id)
        if summary.my_status != "active":
            # Not waiting any more because no longer a member: the inviter's rotation came
            # after the invite's expiry and left this joiner out (the join lapsed).
            raise JoinRefused("The join came too late: no member let you in before the invite "
                              "expired. Ask for a new invite.", Reason.INVITE_EXPIRED.value)
        has_keys = not summary.waiting_for_keys
        await self._say("keys" if has_keys else "waiting_for_keys", peer_id)
        return JoinResult(space_id, peer_id, received, has_keys)
