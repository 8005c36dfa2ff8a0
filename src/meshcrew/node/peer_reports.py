"""``meshcrew peers``: every peer the node knows, and per shared space what each one lacks.

A peer is listed if it is connected, in the peer book, or a member of one of this member's
spaces (a member's linked laptop is a peer of its own: role ``device``, named by its member).
For each space both are in, the report compares the peer's frontier as last seen in a sync
session (kept by :mod:`meshcrew.node.receipts`) with the replica's: ``they_lack`` counts
this replica's records the peer is not known to hold, ``we_lack`` the peer's that are missing
here (both as of that session). ``last_sync_ms`` says when a session with the peer last ran to
the end, overall and per space (kept in the peer book).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.identity import peer_id_of, public_key_of_peer_id
from meshcrew.node.reports import PeerReport, PeerSpace

if TYPE_CHECKING:
    from meshcrew.identity import Identity
    from meshcrew.net import Host
    from meshcrew.node.carrying import Serving
    from meshcrew.node.membership import Membership
    from meshcrew.node.peerbook import PeerBook
    from meshcrew.node.receipts import Receipts
    from meshcrew.service import Member
    from meshcrew.store import Replica


class KnowsPeers(Protocol):
    """What the report reads (:class:`meshcrew.node.node.Node` is one): the member's spaces and
    their members and carriers, the host's connections, the peer book, and what each peer was
    last seen to hold."""

    @property
    def identity(self) -> Identity: ...
    @property
    def membership(self) -> Membership: ...
    @property
    def member(self) -> Member: ...
    @property
    def serving(self) -> Serving: ...
    @property
    def host(self) -> Host: ...
    @property
    def book(self) -> PeerBook: ...
    @property
    def replica(self) -> Replica: ...
    @property
    def receipts(self) -> Receipts: ...


def peer_reports(node: KnowsPeers) -> list[PeerReport]:
    """The report of every peer the node knows: connected first, then most recently seen."""
    me = node.identity.public_key
    names: dict[bytes, str] = {}
    carriers: set[bytes] = set()
    device_of: dict[bytes, bytes] = {}
    spaces_of: dict[bytes, list[bytes]] = {}
    space_names: dict[bytes, str | None] = {}
    for space_id in node.membership.my_spaces():
        try:
            entries = node.member.members(space_id)
            space_names[space_id] = node.member.summary(space_id).name
        except MeshcrewError:
            continue
        for entry in entries:
            if entry.status == "active" and entry.key != me:
                names.setdefault(entry.key, entry.name)
                spaces_of.setdefault(entry.key, []).append(space_id)
        state = node.membership.state(space_id)
        for device in node.membership.active(space_id) - {me}:  # named by their member
            member = state.member_of(device) if state is not None else None
            if member is not None and member != device and (member in names or member == me):
                device_of[device] = member
                spaces_of.setdefault(device, []).append(space_id)
        for carrier in node.serving.carriers(space_id) - {me}:
            carriers.add(carrier)
            spaces_of.setdefault(carrier, []).append(space_id)
    connected = set(node.host.connected_peers())
    known = {e.peer_id for e in node.book.entries()}
    peer_ids = connected | known | {peer_id_of(k) for k in spaces_of}
    reports = []
    for peer_id in peer_ids:
        try:
            key: bytes | None = public_key_of_peer_id(peer_id)
        except IdentityError:
            key = None
        known_entry = node.book.get(peer_id)
        shared = spaces_of.get(key, []) if key is not None else []
        link = node.host.link(peer_id)
        owner = device_of.get(key) if key is not None else None
        reports.append(PeerReport(
            peer_id=peer_id, key=key,
            name=(names.get(owner, node.identity.name) if owner is not None
                  else names.get(key) if key is not None else None),
            connected=peer_id in connected,
            addrs=tuple(known_entry.addrs) if known_entry else
            tuple(node.host.peer_addrs(peer_id)),
            last_seen_ms=known_entry.last_seen_ms if known_entry else None,
            banned=node.host.scores.is_banned(peer_id),
            source=known_entry.source if known_entry else "member",
            spaces=tuple(_space(node, space_id, key, space_names.get(space_id),
                                known_entry.spaces_synced.get(space_id) if known_entry else None)
                         for space_id in shared if key is not None),
            last_sync_ms=known_entry.last_sync_ms if known_entry else None,
            link=link.link, via=link.via, hole_punch=link.hole_punch,
            role="device" if owner is not None else _role(key, names, carriers),
            member=owner))
    reports.sort(key=lambda r: (not r.connected, -(r.last_seen_ms or 0), r.peer_id))
    return reports


def _role(key: bytes | None, members: dict[bytes, str], carriers: set[bytes]) -> str:
    if key is not None and key in members:
        return "member"
    return "carrier" if key in carriers else "other"


def _space(node: KnowsPeers, space_id: bytes, key: bytes, name: str | None,
           last_sync_ms: int | None) -> PeerSpace:
    ours = node.replica.frontier(space_id)
    theirs = node.receipts.frontier(space_id, key)
    if theirs is None:
        return PeerSpace(space_id, name, None, None, False, last_sync_ms)
    they_lack = node.receipts.lacks(space_id, key, ours)
    we_lack = sum(max(0, head.seq - (ours[a].seq if a in ours else 0))
                  for a, head in theirs.items())
    return PeerSpace(space_id, name, they_lack, we_lack, True, last_sync_ms)
