"""A libp2p stream with a deadline on every read and write and meshcrew's own errors.

libp2p signals end-of-stream with an exception (``StreamEOF``) and a handler that raises leaves
its stream open, so the other side hangs (LIBP2P.md trap 7). :class:`Stream` turns EOF into
``b""``, puts every read and write under a deadline, and :meth:`Stream.reset` never raises, so a
``finally`` can always clean up.
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.network.stream.exceptions import StreamEOF

from meshcrew.identity import public_key_of_peer_id
from meshcrew.net.seam import log, translated

READ_CHUNK = 64 * 1024
WRITE_CHUNK = 64 * 1024
"""Most bytes one write deadline covers: a link moving 4.4 KB/s keeps to a 15 s deadline."""
_CLOSE_TIMEOUT_S = 2.0


class Stream:
    """One open stream to one peer.

    Args:
        raw: the libp2p stream.
        read_timeout_s: longest wait for the next bytes.
        write_timeout_s: longest wait for a write to be accepted.

    Raises:
        IdentityError: if the remote peer id is not an ed25519 member key.
    """

    def __init__(self, raw: Any, *, read_timeout_s: float, write_timeout_s: float) -> None:
        self._raw = raw
        self._read_timeout = read_timeout_s
        self._write_timeout = write_timeout_s
        self._finished = False
        self.peer_id: str = str(raw.muxed_conn.peer_id)
        """The remote libp2p peer id, authenticated by Noise."""
        self.remote_key: bytes = public_key_of_peer_id(self.peer_id)
        """The remote member's ed25519 public key (the same key as the peer id)."""

    @property
    def finished(self) -> bool:
        """Whether the stream was closed or reset by this side."""
        return self._finished

    async def receive_some(self, max_bytes: int = READ_CHUNK) -> bytes:
        """Up to ``max_bytes`` bytes, or ``b""`` once the peer has closed its side.

        Raises:
            PeerTimeout: nothing arrived within the read deadline.
            ConnectionLost: the stream was reset or the connection dropped.
        """
        with translated(f"reading from {self.peer_id}"), trio.fail_after(self._read_timeout):
            try:
                data: bytes = await self._raw.read(max_bytes)
            except StreamEOF:
                return b""
            return data

    async def send_all(self, data: bytes) -> None:
        """Write all of ``data``, :data:`WRITE_CHUNK` bytes at a time, each under the write
        deadline; a cancellation from outside takes effect between chunks, never inside one.

        Each chunk is shielded because a write cut short can break the whole connection, not
        only this stream: py-libp2p's Noise encrypts a frame (taking the next nonce) before the
        socket write's first checkpoint, so a cancellation there skips a nonce: the peer fails
        to open every later frame ('Failed authentication of message') and closes the
        connection. A sync session whose event handler failed cancelled its writer so, and
        lost the connection with it (tests/test_net_stream.py).

        The deadline measures progress, not the whole write: over a link slower than a sync
        batch per deadline (512 KiB in 15 s, 35 KB/s) every session with a catching-up peer
        was cut after a few batches and cost that peer 10 points as a stall
        (tests/test_honest_charges.py).

        Raises:
            PeerTimeout: the peer did not take a chunk within the write deadline.
            ConnectionLost: the stream was reset or the connection dropped.
        """
        with translated(f"writing to {self.peer_id}"):
            for start in range(0, max(len(data), 1), WRITE_CHUNK):
                if start:
                    await trio.lowlevel.checkpoint_if_cancelled()
                with trio.CancelScope(shield=True), trio.fail_after(self._write_timeout):
                    await self._raw.write(data[start:start + WRITE_CHUNK])

    async def aclose(self) -> None:
        """Close gracefully (the peer reads end-of-stream); fall back to a reset. Never raises."""
        if self._finished:
            return
        self._finished = True
        try:
            with trio.CancelScope(shield=True), trio.fail_after(_CLOSE_TIMEOUT_S):
                await self._raw.close()
        except Exception:  # closing is best effort: a broken stream is reset instead
            log.debug("closing a stream to %s failed; resetting", self.peer_id, exc_info=True)
            await self._reset_raw()

    async def reset(self) -> None:
        """Abort the stream so the peer's reads fail at once. Never raises."""
        if self._finished:
            return
        self._finished = True
        await self._reset_raw()

    async def _reset_raw(self) -> None:
        await abort(self._raw)


async def abort(raw: Any) -> None:
    """Reset a raw libp2p stream, shielded from cancellation and bounded in time. Never raises."""
    # Shielded: a reset is how a cancelled task tells the peer to stop waiting.
    with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT_S):
        try:
            await raw.reset()
        except Exception:  # already gone: nothing left to abort
            log.debug("resetting a stream failed", exc_info=True)
