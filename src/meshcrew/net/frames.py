"""Length-prefixed msgpack messages on a stream, for the node's small request/answer protocols
(carry requests, expiry notices).

Each message is its msgpack encoding after its length, a big-endian integer of a fixed number of
bytes (each protocol's choice).
"""

from __future__ import annotations

import msgpack

from meshcrew.errors import NetError
from meshcrew.net.stream import Stream


async def write_message(stream: Stream, value: object, *, prefix: int) -> None:
    """Send ``value`` as one message, after its length in ``prefix`` bytes."""
    data = msgpack.packb(value, use_bin_type=True)
    await stream.send_all(len(data).to_bytes(prefix, "big") + data)


async def read_message(stream: Stream, *, prefix: int, limit: int, what: str) -> object:
    """Read one message whose length takes ``prefix`` bytes and is at most ``limit``.

    Raises:
        NetError: the stream broke or ended early.
        ValueError: the peer's nonsense (for a penalty): a message longer than ``limit``, or
            bytes that are not msgpack; ``what`` names the protocol's messages in it.
    """
    size = int.from_bytes(await _read_exactly(stream, prefix, what), "big")
    if size > limit:
        raise ValueError(f"{what} of {size} bytes")
    try:
        return msgpack.unpackb(await _read_exactly(stream, size, what), raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"not msgpack: {exc}") from exc


async def _read_exactly(stream: Stream, size: int, what: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise NetError(f"the stream ended early, in the middle of {what}")
        data += chunk
    return data
