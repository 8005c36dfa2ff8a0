"""What the control socket may ask of the node: an explicit allow-list, by operation name.

Member operations run the :class:`~meshcrew.service.Member` method of the same name with the
arguments given, so a command behaves the same whether it runs locally or in the node. Node
operations (``status``, ``peers``, ``seen_by``, ``connect``, ``join_network``, ``watch``) are
the node's own. ``join`` joins over the network, or locally when the replica already holds the
space (imported from the inviter's file); ``invite`` puts the node's addresses in the code when
none are given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from meshcrew.errors import LocalProtocolError, UnknownName
from meshcrew.node.control import SendProgress
from meshcrew.node.control_client import MEMBER_OPS, control_types
from meshcrew.node.dialer import peer_of
from meshcrew.node.partition import PARTITION_OPS, partition_op
from meshcrew.node.reports import JoinProgress, RecordsChanged
from meshcrew.node.values import ValueTypes
from meshcrew.spaces import decode_invite_code
from meshcrew.spaces.invites import MAX_ADDR_CHARS, MAX_ADDRS

if TYPE_CHECKING:
    import trio

    from meshcrew.net import Host
    from meshcrew.node.contacts import Contacts
    from meshcrew.node.peerbook import PeerBook
    from meshcrew.node.reports import JoinResult, LinkResult, NodeEvent, NodeStatus, PeerReport
    from meshcrew.service import Member


NODE_OPS = frozenset({"status", "peers", "seen_by", "connect", "join_network", "invite",
                      "join", "ping", "watch", "link_device"})


def value_types() -> ValueTypes:
    """The types the node's replies and the CLI's arguments may hold."""
    return control_types()


class ControlledNode(Protocol):
    """What the control socket reaches of the node (:class:`meshcrew.node.node.Node` is one)."""

    @property
    def member(self) -> Member: ...
    @property
    def host(self) -> Host: ...
    @property
    def book(self) -> PeerBook: ...
    @property
    def contacts(self) -> Contacts: ...
    def status(self) -> NodeStatus: ...
    def peers(self) -> list[PeerReport]: ...
    def seen_by(self, record_id: bytes) -> list[bytes]: ...
    async def connect(self, addr: str) -> str: ...
    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[NodeEvent]: ...
    def addrs(self) -> tuple[str, ...]: ...
    async def join(self, code: str,
                   progress: Callable[[JoinProgress], Awaitable[None]] | None = None
                   ) -> JoinResult: ...
    async def link_device(self, code: str) -> LinkResult: ...


class Dispatcher:
    """Runs allow-listed operations for the control socket."""

    def __init__(self, node: ControlledNode) -> None:
        self._node = node

    async def dispatch(self, op: str, args: list[Any], kwargs: dict[str, Any],
                       progress: SendProgress) -> Any:
        """Run ``op``; MeshcrewError refusals go back to the CLI as they are."""
        node = self._node
        if op in MEMBER_OPS:
            method: Callable[..., Any] = getattr(node.member, op)
            return method(*args, **kwargs)
        if op in PARTITION_OPS:
            return partition_op(node.host, op, *args)
        if op not in NODE_OPS:
            raise LocalProtocolError(f"The node has no operation {op!r}.")
        if op == "ping":
            return True
        if op == "status":
            return node.status()
        if op == "peers":
            return node.peers()
        if op == "seen_by":
            return node.seen_by(*args, **kwargs)
        if op == "connect":
            return await node.connect(*args, **kwargs)
        if op == "link_device":
            return await node.link_device(*args, **kwargs)
        if op == "watch":  # every RecordsChanged as a progress frame, until the client hangs up
            with node.subscribe() as events:
                async for event in events:
                    if isinstance(event, RecordsChanged):
                        await progress(event)
            return None
        if op == "invite":
            kwargs.setdefault("addrs", ())
            if not kwargs["addrs"]:
                kwargs["addrs"] = tuple(a for a in node.addrs()
                                        if len(a) <= MAX_ADDR_CHARS)[:MAX_ADDRS]
            return node.member.invite(*args, **kwargs)

        async def report(step: JoinProgress) -> None:
            await progress(step)

        code = str(args[0] if args else kwargs["code"])
        if op == "join_network":
            return await node.join(code, progress=report)
        return await self._join(code, report)

    async def _join(self, code: str, report: Callable[[JoinProgress], Awaitable[None]]) -> bytes:
        """``Member.join`` with the network: locally when the space is already here (imported
        from the inviter's file), else by the join handshake with a member's node."""
        node = self._node
        invite = decode_invite_code(code)
        try:
            view = node.member.view(invite.space_id)
        except UnknownName:
            return (await node.join(code, progress=report)).space
        if view.is_member:  # a join signed before that no member took in goes again
            return (await node.join(code, progress=report)).space
        space_id = node.member.join(code)
        for addr in invite.addrs:  # the inviter is a member now: the dialer reaches it
            peer_id = peer_of(addr)
            if peer_id is not None:
                node.book.learn(peer_id, [addr], source="invite")
        node.contacts.dialer.wake()
        return space_id
