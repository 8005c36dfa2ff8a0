"""The error tree of meshcrew.

Every error a person can meet is a :class:`MeshcrewError` whose message is one sentence that says
what went wrong and, where there is one, what to do about it. Errors caused by something another
peer sent derive from :class:`RemoteError`; errors caused by local input or state derive from
:class:`LocalError`. The CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations


class MeshcrewError(Exception):
    """Root of every error meshcrew raises on purpose."""


class LocalError(MeshcrewError):
    """Something about this machine's input or state is wrong (the person can fix it)."""


class RemoteError(MeshcrewError):
    """Something another peer sent is wrong (the node rejects it and carries on)."""


class IdentityError(LocalError):
    """The identity is missing, unreadable, unsafe or locked."""


class HomeError(LocalError):
    """The home folder is unusable, or another node already holds it."""


class ReplicaError(LocalError):
    """The local replica cannot be opened or is damaged."""


class SpaceError(LocalError):
    """This member cannot do that in this space now (not a member, keys need rotating, ...)."""


class InviteCodeError(LocalError):
    """An invite code cannot be read: mistyped, cut short, or not a meshcrew code."""


class InputError(LocalError):
    """A value the person gave is not acceptable (out of range, too long, badly written)."""


class UnknownName(InputError):
    """A space, member or record named by the person matches nothing this replica holds."""


class AmbiguousName(InputError):
    """A space, member or record named by the person matches more than one; give more of it."""


class TransferFileError(LocalError):
    """A file of exported records cannot be read or written (missing, damaged, not one)."""


class JoinRefused(SpaceError):
    """No member's node would let this joiner in (the invite is used up, expired or wrong), or
    none could be reached; ``reason`` says why in a machine-readable way."""

    def __init__(self, message: str, reason: str = "unreachable") -> None:
        super().__init__(message)
        self.reason = reason


class NodeNotRunning(LocalError):
    """The command needs a running node (``meshcrew node``) and none holds the home folder."""


class DemoError(LocalError):
    """``meshcrew demo`` could not set up its crew (a demo node exited or did not answer, or
    the demo folder cannot be used)."""


class BackupError(LocalError):
    """A backup file cannot be written or opened (wrong passphrase, damaged, cut short, not a
    backup), or restoring it into this home folder is refused."""


class RemoteProtocolError(RemoteError):
    """A peer broke a meshcrew wire protocol (bad frame, oversize, unasked-for data).

    The exchange with that peer is abandoned and the peer loses score; nothing it sent after the
    fault is kept.
    """


class DecryptError(RemoteError):
    """A ciphertext or sealed key does not open with the keys this member holds."""


class LocalProtocolError(MeshcrewError):
    """This node drove a protocol object wrongly (a bug in meshcrew, not the peer's fault)."""


class NetError(MeshcrewError):
    """A network operation failed; the node carries on and may retry later."""


class ListenError(NetError):
    """The node cannot listen on an address (in use, not local, or not a valid multiaddr)."""


class DialError(NetError):
    """A peer could not be reached at any of the addresses tried."""


class PeerTimeout(NetError):
    """A peer did not answer within the deadline."""


class ConnectionLost(NetError):
    """The stream or connection to a peer closed or was reset in the middle of an exchange."""


class PeerBanned(NetError):
    """The peer is on this node's ban list (it sent invalid data too often)."""
