"""The CLI's side of the control socket: ask a running node to act, with plain blocking sockets.

The control socket is a Unix socket in the home folder (``Home.socket_file``, mode 0600), served
by the node while it runs. One connection carries one request:

- request: one frame, the value ``{"op": name, "args": [...], "kwargs": {...}}``;
- replies: zero or more ``{"progress": value}`` frames, then one ``{"ok": value}`` or
  ``{"error": {"type": class name, "message": sentence, "reason": reason or None}}``.

A frame is a 4-byte big-endian length and that many bytes of a value encoded by
:mod:`meshcrew.node.values`. Errors come back as the same :class:`~meshcrew.errors.MeshcrewError`
class the node raised, so a command prints the same sentence whether it ran locally or in the
node. This module imports neither trio nor libp2p, so a CLI command that talks to a node starts
quickly.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshcrew import errors
from meshcrew.errors import LocalProtocolError, MeshcrewError
from meshcrew.home import Home
from meshcrew.node.values import ValueTypes, decode, encode

MAX_FRAME_BYTES = 256 * 1024 * 1024
"""Largest control frame (an export of a large space travels in one)."""

_LENGTH = struct.Struct(">I")
CONNECT_TIMEOUT_S = 2.0
REPLY_TIMEOUT_S = 120.0
"""Longest silence from the node before a call gives up (a join sends progress meanwhile)."""

Progress = Callable[[Any], None]

MEMBER_OPS = frozenset({
    # reads
    "now", "spaces", "summary", "members", "log", "thread", "cycle", "energy", "compass",
    "board", "removals", "rejected", "resolve_space", "resolve_member", "resolve_record",
    "resolve_proposal", "make_post", "export", "carriers", "proposals", "proposal",
    "resolve_proposal_post", "invites", "resolve_invite", "settings", "settings_history",
    # writes
    "create_space", "leave", "propose_removal", "consent", "rotate", "checkin", "reply",
    "react", "post", "export_file", "import_file", "add_carrier", "drop_carrier", "propose",
    "answer", "amend_proposal", "withdraw_proposal", "revoke_invite", "change_settings",
    # a member's devices
    "devices", "revoke_device",
})
"""Member methods a running node runs by name for the CLI (``invite`` and ``join`` are the
node's own versions; ``view`` and the replica are not reachable over the socket)."""


def frame(value: Any) -> bytes:
    """One control frame holding ``value``."""
    payload = encode(value)
    if len(payload) > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"a control frame of {len(payload)} bytes is over the limit")
    return _LENGTH.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The payload length a 4-byte frame header announces.

    Raises:
        LocalProtocolError: the length is zero or over :data:`MAX_FRAME_BYTES`.
    """
    (length,) = _LENGTH.unpack(header)
    if not 0 < length <= MAX_FRAME_BYTES:
        raise LocalProtocolError(f"a control frame announces {length} bytes")
    return int(length)


def _error_classes() -> dict[str, type[MeshcrewError]]:
    found: dict[str, type[MeshcrewError]] = {}
    todo: list[type[MeshcrewError]] = [MeshcrewError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo += cls.__subclasses__()
    return found


def rebuild_error(info: Any) -> MeshcrewError:
    """The exception an ``{"error": ...}`` reply describes (its class, its sentence)."""
    if not isinstance(info, dict):
        return LocalProtocolError("the node sent a malformed error")
    message = str(info.get("message", "The node refused."))
    cls = _error_classes().get(str(info.get("type")), MeshcrewError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    if info.get("reason") is not None:
        error.reason = info["reason"]  # type: ignore[attr-defined]
    return error


class ControlClient:
    """Calls to the node that holds a home folder.

    Args:
        path: the control socket.
        types: the dataclasses and enums replies may hold.
    """

    def __init__(self, path: Path, types: ValueTypes) -> None:
        self.path = path
        self._types = types

    @classmethod
    def if_running(cls, home: Home, types: ValueTypes) -> ControlClient | None:
        """A client for the node of ``home``, or None if no node answers there."""
        client = cls(home.socket_file, types)
        try:
            client._connect().close()
        except OSError:
            return None
        return client

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(str(self.path))
        except BaseException:
            sock.close()
            raise
        return sock

    def call(self, op: str, *args: Any, progress: Progress | None = None,
             **kwargs: Any) -> Any:
        """Run ``op`` in the node and return its result.

        Raises:
            MeshcrewError: the node refused (the same class and sentence as a local run), or
                could not be reached or stopped answering (:class:`~meshcrew.errors.HomeError`).
        """
        try:
            sock = self._connect()
        except OSError as exc:
            raise errors.HomeError(f"Cannot reach the node of {self.path.parent}: "
                                   f"{exc.strerror or exc}; is it still running?") from None
        with sock:
            sock.settimeout(REPLY_TIMEOUT_S)
            try:
                sock.sendall(frame({"op": op, "args": list(args), "kwargs": kwargs}))
                while True:
                    reply = self._read(sock)
                    if not isinstance(reply, dict):
                        raise LocalProtocolError("the node sent a malformed reply")
                    if "progress" in reply:
                        if progress is not None:
                            progress(reply["progress"])
                        continue
                    if "ok" in reply:
                        return reply["ok"]
                    raise rebuild_error(reply.get("error"))
            except TimeoutError:
                raise errors.HomeError(f"The node of {self.path.parent} stopped answering "
                                       f"({op}); see its log.") from None
            except OSError as exc:
                raise errors.HomeError(f"Lost the node of {self.path.parent} during {op}: "
                                       f"{exc.strerror or exc}.") from None

    def _read(self, sock: socket.socket) -> Any:
        length = frame_length(_read_exactly(sock, _LENGTH.size))
        return decode(_read_exactly(sock, length), self._types)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        data = sock.recv(min(count - len(chunks), 1 << 20))
        if not data:
            raise ConnectionResetError("the node closed the control socket")
        chunks += data
    return bytes(chunks)


def control_types() -> ValueTypes:
    """The dataclasses and enums that travel over the control socket."""
    from meshcrew import reasons
    from meshcrew.node import reports
    from meshcrew.service import devices, entries
    from meshcrew.spaces import kinds, posts, settings

    return ValueTypes.of_modules([entries, reports, posts, settings, kinds, reasons, devices])
