"""How a command reaches a running node, and how ``join`` reaches the network without one.

- :class:`NodeMember` has the member service's method names and sends each call over the
  control socket to the node that holds the home folder, so the node signs, stores and
  publishes at once. Results and errors are the same objects a local call gives.
- :class:`OfflineMember` is the member service over the replica itself (no node running); its
  ``join`` starts a node inside the command for as long as the join takes when the replica does
  not hold the space yet, so ``meshcrew join CODE`` works whether a node runs or not.
- :class:`JoinDisplay` shows a join's progress on stderr while history arrives.

Nothing here imports trio or libp2p until a join needs the network.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from meshcrew.errors import UnknownName
from meshcrew.identity import Identity
from meshcrew.node.control_client import MEMBER_OPS, ControlClient
from meshcrew.node.reports import JoinProgress, JoinResult, LinkResult
from meshcrew.service import Member
from meshcrew.spaces import decode_invite_code
from meshcrew.store import Replica

_PATH_ARGUMENTS = {"export_file": 1, "import_file": 0}
"""Operations whose argument at this position is a file path (made absolute: the node runs in
another working directory)."""


class JoinDisplay:
    """Prints a join's progress: one line per stage, and a counter while history arrives."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._stage = ""
        self._tty = err.isatty()

    def __call__(self, step: Any) -> None:
        """Show one :class:`~meshcrew.node.reports.JoinProgress`."""
        if not isinstance(step, JoinProgress):
            return
        if step.stage == "history":
            line = f"Receiving the space's history: {step.done:,}/{step.total:,} records"
            if self._tty:
                self._err.write(f"\r{line}")
                self._err.flush()
            elif step.done in (0, step.total):
                print(line, file=self._err)
            self._stage = step.stage
            return
        if self._stage == "history" and self._tty:
            self._err.write("\n")
        if step.stage != self._stage or step.stage == "dialling":
            print(_STAGE_LINES.get(step.stage, step.stage).format(peer=step.detail),
                  file=self._err)
        self._stage = step.stage


_STAGE_LINES = {
    "dialling": "Reaching {peer}…",
    "looking_on_lan": "No member answered at the code's addresses; looking for one on the LAN "
                      "and among known peers…",
    "asking": "Asking {peer} to let you in…",
    "joined": "Joined; your join is with {peer}.",
    "keys": "The keys arrived: you can read and post.",
    "waiting_for_keys": "Still waiting for a member to share the keys; they will arrive when "
                        "the inviter's node is online.",
}


class NodeMember:
    """The member service of the node that is running for this home folder.

    Every method of :class:`~meshcrew.service.Member` the CLI uses is sent as one control
    request; ``invite`` puts the node's addresses in the code, and ``join`` joins over the
    network (showing progress through ``on_progress``).
    """

    def __init__(self, client: ControlClient, on_progress: Callable[[Any], None] | None = None
                 ) -> None:
        self._client = client
        self._on_progress = on_progress

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in MEMBER_OPS:
            raise AttributeError(f"a running node does not offer {name!r} to the CLI")
        at = _PATH_ARGUMENTS.get(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if at is not None and len(args) > at:
                args = (*args[:at], os.path.abspath(args[at]), *args[at + 1:])
            if "path" in kwargs:
                kwargs["path"] = os.path.abspath(kwargs["path"])
            return self._client.call(name, *args, **kwargs)

        return call

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int,
               addrs: tuple[str, ...] = ()) -> str:
        """Make an invite whose code carries the node's addresses."""
        code: str = self._client.call("invite", space_id, uses=uses, expires_ms=expires_ms,
                                      addrs=addrs)
        return code

    def join(self, code: str) -> bytes:
        """Join over the network through the running node; returns the space id."""
        space_id: bytes = self._client.call("join", code, progress=self._on_progress)
        return space_id

    def join_network(self, code: str) -> JoinResult:
        """Join over the network and say how it went."""
        result: JoinResult = self._client.call("join_network", code,
                                               progress=self._on_progress)
        return result

    def link_device(self, code: str) -> LinkResult:
        """Link the device of a link code through the running node."""
        result: LinkResult = self._client.call("link_device", code)
        return result


class OfflineMember(Member):
    """The member service over the replica itself, when no node runs for the home folder.

    ``join`` of a space the replica does not hold runs a node in this process for the length
    of the join (it listens like ``meshcrew node`` would, on the port used last time).
    """

    def __init__(self, replica: Replica, identity: Identity, *, clock: Callable[[], int],
                 on_progress: Callable[[Any], None] | None = None) -> None:
        super().__init__(replica, identity, clock=clock)
        self._on_progress = on_progress

    def join(self, code: str) -> bytes:
        """Join: locally if the invite is here (an imported export brought it), else over the
        network: the space is not here, or only its records from before the invite are (a
        member who left and is invited back, or an old export), which refused the join, or this
        member's join is (signed in a try whose member stopped answering: it goes again)."""
        invite = decode_invite_code(code)
        try:
            view = self.view(invite.space_id)
            here = invite.invite_id in view.state.invites and not view.is_member
        except UnknownName:
            here = False
        return super().join(code) if here else self.join_network(code).space

    def join_network(self, code: str) -> JoinResult:
        """Run a node in this process just long enough to join over the network."""
        from meshcrew.cli.temporary_node import join_with_temporary_node

        return join_with_temporary_node(self.replica, self.identity, code, self._on_progress)

    def link_device(self, code: str) -> LinkResult:
        """Run a node in this process just long enough to link a device."""
        from meshcrew.cli.temporary_node import link_with_temporary_node

        return link_with_temporary_node(self.replica, self.identity, code)


def progress_to(err: TextIO | None = None) -> JoinDisplay:
    """A progress display on ``err`` (stderr by default)."""
    return JoinDisplay(err if err is not None else sys.stderr)
