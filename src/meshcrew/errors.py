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
