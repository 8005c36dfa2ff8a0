"""Address exchange on ``/meshcrew/addrs/1.0.0``: members tell each other where members are.

A node learns a peer's addresses only by meeting it (an invite code, the LAN, a connection). A
crew member who joined through the inviter would then know no other member's address, and lose
the crew when the inviter is offline. So when two members connect, the one that starts sync
sessions (the lower key) opens this stream and both send, at once, the addresses they know of
the members of the spaces they share with the other: their own first.

Each side sends one frame (as in sync: a varint length, then msgpack)::

    [0, [[peer id, [multiaddr, ...]], ...]]

at most :data:`MAX_PEERS` peers of at most 8 addresses each. A receiver keeps only addresses of
peers it too counts as members of a space it shares with the sender, each ending in that peer's
``/p2p/`` id, so a peer cannot use the exchange to fill the book with strangers, and a node tells
no one where members are except other members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meshcrew.errors import RemoteProtocolError
from meshcrew.net import PROTOCOL_VIOLATION, Stream
from meshcrew.node.join import Messages, StreamEnded, encode_frame
from meshcrew.node.peerbook import MAX_ADDRS

ADDRS_PROTOCOL = "/meshcrew/addrs/1.0.0"
MAX_PEERS = 512
_MAX_ADDR_CHARS = 256

Known = dict[str, list[str]]
"""Peer id → addresses, as sent."""


def encode_known(known: Known) -> bytes:
    """The frame that tells a peer these addresses."""
    items = [[peer_id, addrs[:MAX_ADDRS]] for peer_id, addrs in list(known.items())[:MAX_PEERS]]
    return encode_frame([0, items])


def decode_known(message: list[Any]) -> Known:
    """The addresses a peer told, with every shape and limit checked.

    Raises:
        RemoteProtocolError: the message is malformed or over the limits.
    """
    if len(message) != 2 or message[0] != 0 or not isinstance(message[1], list) \
            or len(message[1]) > MAX_PEERS:
        raise RemoteProtocolError("A malformed address exchange.")
    known: Known = {}
    for item in message[1]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], list) and len(item[1]) <= MAX_ADDRS
                and all(isinstance(a, str) and len(a) <= _MAX_ADDR_CHARS for a in item[1])):
            raise RemoteProtocolError("A malformed entry in an address exchange.")
        suffix = f"/p2p/{item[0]}"
        known[item[0]] = [a for a in item[1] if a.endswith(suffix)]
    return known


async def exchange(stream: Stream, ours: Known,
                   learn: Callable[[str, Iterable[str]], None],
                   penalize: Callable[[str, float, str], None]) -> None:
    """Send ``ours``, read the peer's, hand each of its peers to ``learn``; close the stream.

    ``learn(peer_id, addrs)`` decides what to keep. A malformed message costs the peer points;
    a stream it ends without one does not: it does not count this node as a member of a space
    it shares yet (each node answers by its own view, and the two views meet only later: a
    carrier that had just taken a space reset Bo's exchange twice, and Bo banned it).
    """
    try:
        await stream.send_all(encode_known(ours))
        theirs = decode_known(await Messages(stream).next())
    except StreamEnded:
        await stream.aclose()
        return
    except RemoteProtocolError as exc:
        penalize(stream.peer_id, PROTOCOL_VIOLATION, str(exc))
        await stream.reset()
        return
    for peer_id, addrs in theirs.items():
        if addrs:
            learn(peer_id, addrs)
    await stream.aclose()
