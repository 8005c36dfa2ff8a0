"""The link handshake on ``/meshcrew/link/1.0.0``: a member's node approves a new device.

The new device (``meshcrew init --link``) makes its own key, listens, and shows a **link code**:
``mcl1-`` + lowercase base32 of msgpack ``[1, device key, secret, [addresses]]`` and a 4-byte
BLAKE2b checksum (the invite code's form). On the node that holds the member key, ``meshcrew
devices add CODE`` dials the device (its key is its peer id, authenticated by Noise, so the code
names exactly that laptop) and runs:

| type | name | array | direction |
| --- | --- | --- | --- |
| 0 | offer | ``[0, 1, member key, name, proof, certificate, [addresses]]`` | member → device |
| 1 | accepted | ``[1]`` | device → member |
| 2 | records | ``[2, [record, ...]]`` (the member's spaces, in batches) | member → device |
| 3 | sent | ``[3]`` | member → device |
| 4 | certified | ``[4, [record, ...]]``: the device's certificate in each space | device → member |
| 5 | keys | ``[5, [record, ...]]``: the rotations that seal the keys to it | member → device |
| 6 | refused | ``[6, reason, sentence]`` | either way |

The proof is BLAKE2b keyed with the code's secret over ``member || device`` (personalised
``meshcrew.link``): only someone who read the code can offer, and the offer is bound to this
device and this member. The certificate is the member key's signature over the device key
(:mod:`meshcrew.spaces.devices`): the device checks it before taking anything. Both screens
show the other side's fingerprint to compare: the device shows the member's, the member's node
shows the device's. Once the member's node takes the certificates in, its housekeeping rotates
the keys of every space (the new device can read), and ordinary sync and gossip take over.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from meshcrew.errors import (
    InviteCodeError,
    JoinRefused,
    MeshcrewError,
    NetError,
    RemoteProtocolError,
)
from meshcrew.identity import check_name, peer_id_of
from meshcrew.net import Host, Stream
from meshcrew.node.join import Messages, encode_frame, history_batches
from meshcrew.node.reports import LinkResult
from meshcrew.records import KEY_BYTES, SIG_BYTES, Head
from meshcrew.service import Member
from meshcrew.spaces.devices import verify_certificate
from meshcrew.spaces.invites import MAX_ADDR_CHARS, MAX_ADDRS, decode_checked, encode_checked

if TYPE_CHECKING:
    from meshcrew.node.contacts import Contacts
    from meshcrew.node.peerbook import PeerBook

log = logging.getLogger("meshcrew.node")

LINK_PROTOCOL = "/meshcrew/link/1.0.0"
LINK_VERSION = 1
CODE_PREFIX = "mcl1-"
SECRET_BYTES = 32
_CHECK_PERSON = b"meshcrew.lcode"
_DAMAGED = "This link code is damaged: check that it was copied whole and unchanged."
OFFER, ACCEPTED, RECORDS, SENT, CERTIFIED, KEYS, REFUSED = range(7)


@dataclass(frozen=True, slots=True)
class LinkCode:
    """What a link code carries: the new device's key, a one-time secret, its addresses."""

    device: bytes
    secret: bytes
    addrs: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"LinkCode(device={self.device.hex()[:12]}…, addrs={self.addrs!r})"


def encode_link_code(code: LinkCode) -> str:
    """The one-line text of a link code."""
    return encode_checked(CODE_PREFIX, _CHECK_PERSON,
                          [LINK_VERSION, code.device, code.secret, list(code.addrs)])


def decode_link_code(text: str) -> LinkCode:
    """Read a link code; any typo or cut is "damaged" (InviteCodeError)."""
    fields = decode_checked(text, CODE_PREFIX, _CHECK_PERSON, damaged=_DAMAGED, not_ours=(
        f"This is not a meshcrew link code (they start with {CODE_PREFIX!r})."))
    if len(fields) != 4 or fields[0] != LINK_VERSION:
        raise InviteCodeError("This link code was made by another meshcrew version.")
    _, device, secret, addrs = fields
    if not (isinstance(device, bytes) and len(device) == KEY_BYTES and isinstance(secret, bytes)
            and len(secret) == SECRET_BYTES and isinstance(addrs, list)
            and len(addrs) <= MAX_ADDRS and all(isinstance(a, str) and len(a) <= MAX_ADDR_CHARS
                                                for a in addrs)):
        raise InviteCodeError(_DAMAGED)
    return LinkCode(device, secret, tuple(addrs))


def link_proof(secret: bytes, member: bytes, device: bytes) -> bytes:
    """The proof that the offer comes from someone who read the code."""
    return hashlib.blake2b(member + device, key=secret, digest_size=32,
                           person=b"meshcrew.link").digest()


def _records(message: list[Any]) -> list[bytes]:
    if len(message) != 2 or not isinstance(message[1], list) or \
            not all(isinstance(raw, bytes) for raw in message[1]):
        raise RemoteProtocolError("A link message's records are malformed.")
    return list(message[1])


def _expect(message: list[Any], *wanted: int) -> list[Any]:
    if message[0] == REFUSED:
        reason = message[2] if len(message) == 3 and isinstance(message[2], str) else ""
        raise JoinRefused(reason[:300] or "The other side refused the link.", "link_refused")
    if message[0] not in wanted:
        raise RemoteProtocolError(f"An unexpected link message (type {message[0]}).")
    return message


class LinkWaiter:
    """The new device's side: serves one link, then :attr:`done` is set.

    Args:
        member: this device's member service (its identity is the device key).
        code: the code this device showed.
        take: stores records from the member's node (the replica, through the node).
        learn: notes the member node's peer id and addresses (for the peer book).
    """

    def __init__(self, member: Member, code: LinkCode, *,
                 take: Callable[[list[bytes], str], None],
                 learn: Callable[[str, list[str]], None]) -> None:
        self._member = member
        self._code = code
        self._take = take
        self._learn = learn
        self.done = trio.Event()
        self.result: LinkResult | None = None

    async def serve(self, stream: Stream) -> None:
        """Run the handshake on an incoming stream."""
        try:
            await self._serve(stream, stream.peer_id)
        except (RemoteProtocolError, MeshcrewError) as exc:
            log.info("a link attempt failed: %s", exc)
            await stream.reset()

    async def _serve(self, stream: Stream, peer_id: str) -> None:
        messages = Messages(stream)
        offer = _expect(await messages.next(), OFFER)
        if self.done.is_set():
            await self._refuse(stream, "This device is linked already.")
            return
        if len(offer) != 7 or offer[1] != LINK_VERSION:
            raise RemoteProtocolError("A malformed link offer.")
        _, _, member, name, proof, certificate, addrs = offer
        me = self._member.identity.public_key
        if not (isinstance(member, bytes) and len(member) == KEY_BYTES
                and isinstance(proof, bytes) and isinstance(certificate, bytes)
                and len(certificate) == SIG_BYTES and isinstance(name, str)
                and isinstance(addrs, list) and all(isinstance(a, str) for a in addrs)):
            raise RemoteProtocolError("A malformed link offer.")
        if not hmac.compare_digest(proof, link_proof(self._code.secret, member, me)):
            await self._refuse(stream, "The offer does not prove the link code's secret.")
            return
        if not verify_certificate(member, me, certificate):
            await self._refuse(stream, "The certificate is not the member key's signature.")
            return
        await stream.send_all(encode_frame([ACCEPTED]))
        if peer_id:
            self._learn(peer_id, [a[:MAX_ADDR_CHARS] for a in addrs[:MAX_ADDRS]])
        while (message := _expect(await messages.next(), RECORDS, SENT))[0] == RECORDS:
            self._take(_records(message), peer_id)
        made = self._member.adopt_certificate(member, certificate)
        raws = [r.raw for r in (self._member.replica.get(rid) for rid in made) if r is not None]
        await stream.send_all(encode_frame([CERTIFIED, raws]))
        self._take(_records(_expect(await messages.next(), KEYS)), peer_id)
        await stream.aclose()
        self.result = LinkResult(me, member, check_name(name or "member"), len(made))
        self.done.set()

    async def _refuse(self, stream: Stream, sentence: str) -> None:
        await stream.send_all(encode_frame([REFUSED, "link_refused", sentence]))
        await stream.aclose()


async def offer_link(stream: Stream, code: LinkCode, member: Member, *,
                     take: Callable[[list[bytes]], None], addrs: tuple[str, ...]) -> LinkResult:
    """The member's side, on a stream to the new device: certify it, send the member's
    spaces, take its certificates (the housekeeping rotates the keys), send the rotations.

    Raises:
        JoinRefused: the device refused (a wrong code).
        SpaceError: this node does not hold the member key.
        RemoteProtocolError, NetError: the exchange broke.
    """
    me = member.identity.public_key
    certificate = member.certify_device(code.device)
    messages = Messages(stream)
    await stream.send_all(encode_frame([
        OFFER, LINK_VERSION, me, member.identity.name, link_proof(code.secret, me, code.device),
        certificate, list(addrs)]))
    _expect(await messages.next(), ACCEPTED)
    spaces = [sid for sid in member.replica.spaces() if member.view(sid).is_member]
    for sid in spaces:
        cursor: dict[bytes, Head] = {}
        while batch := history_batches(member.replica, sid, cursor):
            await stream.send_all(encode_frame([RECORDS, batch]))
    await stream.send_all(encode_frame([SENT]))
    certified = _records(_expect(await messages.next(), CERTIFIED))
    before = {sid: member.replica.frontier(sid) for sid in spaces}
    take(certified)  # the housekeeping rotates the keys to the device
    keys = [r.raw for sid in spaces
            for r in member.replica.records_after(sid, before[sid], limit=256)]
    await stream.send_all(encode_frame([KEYS, keys]))
    await stream.aclose()
    return LinkResult(code.device, me, member.identity.name, len(certified))


class LinkingNode(Protocol):
    """What linking a device uses of the node (:class:`meshcrew.node.node.Node` is one)."""

    @property
    def member(self) -> Member: ...
    @property
    def host(self) -> Host: ...
    @property
    def contacts(self) -> Contacts: ...
    def addrs(self) -> tuple[str, ...]: ...
    def take(self, raws: list[bytes], *, sender: str, propagate: bool) -> list[bytes]: ...


async def link_device(node: LinkingNode, text: str) -> LinkResult:
    """Reach the device of a link code and link it (the member's side, ``devices add``).

    Raises:
        InviteCodeError: the code is damaged.
        JoinRefused: the device could not be reached, or refused.
        SpaceError: this node does not hold the member key.
    """
    code = decode_link_code(text)
    peer_id = peer_id_of(code.device)
    node.member.certify_device(code.device)  # refuse at once on a linked device
    if not await node.contacts.dialer.dial(peer_id, code.addrs, source="link"):
        raise JoinRefused("The new device could not be reached at the addresses in its code; "
                          "is `meshcrew init --link` still running there?", "unreachable")
    try:
        stream = await node.host.open_stream(peer_id, LINK_PROTOCOL)
    except NetError as exc:
        raise JoinRefused(f"The new device did not answer: {exc}", "unreachable") from None

    def take(raws: list[bytes]) -> None:
        node.take(raws, sender=peer_id, propagate=True)

    try:
        return await offer_link(stream, code, node.member, take=take, addrs=node.addrs())
    except (NetError, RemoteProtocolError) as exc:
        await stream.reset()
        raise JoinRefused(f"The link broke off: {exc}", "broken") from None


class WaitingNode(Protocol):
    """What waiting for a link uses of the new device's node (a :class:`Node` is one)."""

    @property
    def member(self) -> Member: ...
    @property
    def host(self) -> Host: ...
    @property
    def book(self) -> PeerBook: ...
    def addrs(self) -> tuple[str, ...]: ...
    def take(self, raws: list[bytes], *, sender: str, propagate: bool) -> list[bytes]: ...


async def wait_for_link(node: WaitingNode, *, show: Callable[[str], None], within_s: float,
                        on_records: Callable[[int], None] | None = None,
                        secret: bytes | None = None) -> LinkResult | None:
    """The new device's side (``init --link``, the app's "another device of mine"): make a
    link code with the node's addresses, ``show`` it, serve one link; None if no member's node
    linked this one within ``within_s`` (or the wait was cancelled: the code then stops
    working, since no link is served after the wait).

    Args:
        node: the new device's running node.
        show: given the one-line link code, once, before the wait.
        within_s: how long to wait.
        on_records: told how many of the member's records have arrived so far, as they come.
        secret: the code's one-time secret (default: 32 random bytes).
    """
    addrs = tuple(a for a in node.addrs() if len(a) <= MAX_ADDR_CHARS)[:MAX_ADDRS]
    code = LinkCode(node.member.identity.public_key,
                    os.urandom(SECRET_BYTES) if secret is None else secret, addrs)
    received = 0

    def take(raws: list[bytes], sender: str) -> None:
        nonlocal received
        node.take(raws, sender=sender, propagate=False)
        received += len(raws)
        if on_records is not None:
            on_records(received)

    def learn(peer_id: str, peer_addrs: list[str]) -> None:
        node.book.learn(peer_id, peer_addrs, source="link")
        node.book.save()

    waiter = LinkWaiter(node.member, code, take=take, learn=learn)
    node.host.set_stream_handler(LINK_PROTOCOL, waiter.serve)
    try:
        show(encode_link_code(code))
        with trio.move_on_after(within_s):
            await waiter.done.wait()
    finally:
        if not waiter.done.is_set():
            node.host.set_stream_handler(LINK_PROTOCOL, _not_waiting)
    return waiter.result


async def _not_waiting(stream: Stream) -> None:
    """No link is awaited (the wait ended): a late offer is turned away."""
    await stream.reset()
