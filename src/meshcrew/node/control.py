"""The node's side of the control socket: serve requests from the CLI on a Unix socket.

The wire format is described in :mod:`meshcrew.node.control_client`. Each connection carries one
request, served in its own task; the operation runs in the node's trio thread, so operations on
the replica never overlap. Only operations in the dispatcher's allow-list exist; anything else,
a malformed request, or a frame over the limit gets an error reply (or a closed socket), never a
crash of the node.

The socket file is created with mode 0600 inside the home folder (itself 0700): only the
member's own user can ask the node to act.
"""

from __future__ import annotations

import logging
import os
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from meshcrew.errors import HomeError, LocalProtocolError, MeshcrewError
from meshcrew.node.control_client import frame, frame_length
from meshcrew.node.values import ValueTypes, decode

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

SendProgress = Callable[[Any], Awaitable[None]]
Dispatch = Callable[[str, list[Any], dict[str, Any], SendProgress], Awaitable[Any]]
"""``dispatch(op, args, kwargs, progress)``: run an allow-listed operation; raise
MeshcrewError to refuse."""

_HEADER_TIMEOUT_S = 10.0
_MAX_CLIENTS = 32


async def serve_control(path: Path, dispatch: Dispatch, types: ValueTypes, *,
                        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` (replacing a stale socket file) and serve until cancelled.

    The caller must hold the home folder's writer lock: that proves no other node uses the
    socket, so a file already there is left over from a crash.

    Raises:
        HomeError: the socket cannot be created.
    """
    path.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, at start-up)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o600)  # before listen(): nobody can connect yet
        sock.listen(_MAX_CLIENTS)
    except OSError as exc:
        sock.close()
        raise HomeError(f"Cannot create the control socket {path}: "
                        f"{exc.strerror or exc}.") from None
    listener = trio.SocketListener(sock)
    limiter = trio.CapacityLimiter(_MAX_CLIENTS)

    async def serve_one(stream: trio.SocketStream) -> None:
        async with limiter:
            await _serve_connection(stream, dispatch, types)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, serve_one, [listener])
            task_status.started()
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, at shut-down)


async def _serve_connection(stream: trio.SocketStream, dispatch: Dispatch,
                            types: ValueTypes) -> None:
    async with stream:
        try:
            with trio.fail_after(_HEADER_TIMEOUT_S):
                request = decode(await _receive_frame(stream), types)
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                EOFError, LocalProtocolError) as exc:
            log.debug("dropped a control connection: %s", exc)
            return
        except MeshcrewError as exc:  # a value's own checks refused it (a CLI of another release)
            log.warning("refused a control request: %s", exc)
            await _send(stream, _error_reply(exc))
            return
        if not (isinstance(request, dict) and isinstance(request.get("op"), str)
                and isinstance(request.get("args", []), list)
                and isinstance(request.get("kwargs", {}), dict)):
            await _send(stream, {"error": {"type": "LocalProtocolError",
                                           "message": "A malformed control request."}})
            return

        async def progress(value: Any) -> None:
            # Not suppressed: an operation that reports progress stops when its CLI goes away.
            await stream.send_all(frame({"progress": value}))

        op = request["op"]
        try:
            result = await dispatch(op, request.get("args", []), request.get("kwargs", {}),
                                    progress)
            reply: dict[str, Any] = {"ok": result}
        except MeshcrewError as exc:
            reply = _error_reply(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the CLI went away (Ctrl-C) while progress was being sent
        except Exception as exc:
            log.exception("control operation %s failed", op)
            reply = {"error": {"type": "MeshcrewError", "message":
                               f"The node failed to run {op} ({type(exc).__name__}: {exc}); "
                               "see node.log in the home folder.", "reason": None}}
        try:
            await _send(stream, reply)
        except (TypeError, LocalProtocolError):
            log.exception("the result of %s cannot be sent", op)
            await _send(stream, {"error": {"type": "LocalProtocolError", "message":
                                           f"The node cannot send the result of {op}."}})


def _error_reply(exc: MeshcrewError) -> dict[str, Any]:
    return {"error": {"type": type(exc).__name__, "message": str(exc), "reason": _reason(exc)}}


def _reason(exc: MeshcrewError) -> str | None:
    reason = getattr(exc, "reason", None)
    return None if reason is None else str(reason)


async def _send(stream: trio.SocketStream, value: Any) -> None:
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):  # the CLI went away
        await stream.send_all(frame(value))


async def _receive_exactly(stream: trio.SocketStream, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = await stream.receive_some(min(count - len(data), 1 << 20))
        if not chunk:
            raise EOFError("the control client closed the socket early")
        data += chunk
    return bytes(data)


async def _receive_frame(stream: trio.SocketStream) -> bytes:
    length = frame_length(await _receive_exactly(stream, 4))
    return await _receive_exactly(stream, length)
