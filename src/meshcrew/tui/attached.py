"""The backend of an app attached to a node that already runs for the home folder.

When ``meshcrew node`` holds the home folder, the app does not start a second node: it reads
the replica itself (read-only, which sees what the node commits) and asks the node to do every
write over its control socket, so the node stays the only writer and publishes at once. What
the node knows of the network comes over the socket too (``status``, ``peers``); receipts come
from the file the node saves them in.

The node tells nothing on its own, so :meth:`AttachedBackend.run` (the app's node runner, a
trio guest like an in-process node) looks for new records every :data:`POLL_S` seconds and
reads the peers again every :data:`PEERS_EVERY_S`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.node.control_client import ControlClient
from meshcrew.node.receipts import Receipts
from meshcrew.node.reports import JoinProgress as NodeJoinProgress
from meshcrew.records import Head
from meshcrew.service import MemberReads
from meshcrew.service.devices import DeviceEntry
from meshcrew.spaces import Position, Post, Rhythm, SettingsChange, SpaceKind
from meshcrew.store import Replica
from meshcrew.tui.backend import JoinProgress, PeersUpdated, SpacesChanged
from meshcrew.tui.device_calls import LINK_WAIT_S
from meshcrew.tui.health import Holdings, SyncStatus
from meshcrew.tui.node_backend import STAGES, sync_status
from meshcrew.tui.service_backend import ServiceReads

if TYPE_CHECKING:
    from meshcrew.node.reports import LinkResult

POLL_S = 0.5
PEERS_EVERY_S = 5.0


class AttachedBackend(ServiceReads):
    """Reads from the replica, writes through the running node.

    Args:
        home: the home folder the node holds.
        identity: this member (the node's).
        client: the node's control socket.
        clock: the current time in UTC ms.
    """

    def __init__(self, home: Home, identity: Identity, client: ControlClient, *,
                 clock: Callable[[], int]) -> None:
        super().__init__()
        self.client = client
        self._home = home
        self._replica = Replica.open(home, read_only=True)
        self._reads = MemberReads(self._replica, identity, clock=clock)
        self._frontiers: dict[bytes, dict[bytes, Head]] = {}

    @property
    def reads(self) -> MemberReads:
        """The member service over the read-only replica."""
        return self._reads

    def close(self) -> None:
        """Keep the views of big spaces for the next start (see
        :meth:`MemberReads.keep_snapshots`), and close the replica."""
        try:
            self._reads.keep_snapshots()
        finally:
            self._replica.close()

    # -- the runner: notice what the node did -------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: report spaces whose records changed, and the peers now and then."""
        self._frontiers = self._all_frontiers()
        waited = 0.0
        while True:
            await trio.sleep(POLL_S)
            waited += POLL_S
            now = self._all_frontiers()
            changed = frozenset(s for s in now.keys() | self._frontiers.keys()
                                if now.get(s) != self._frontiers.get(s))
            self._frontiers = now
            if changed:
                self.emit(SpacesChanged(changed))
                self.emit(PeersUpdated())
            elif waited >= PEERS_EVERY_S:
                self.emit(PeersUpdated())
            if changed or waited >= PEERS_EVERY_S:
                waited = 0.0

    def _all_frontiers(self) -> dict[bytes, dict[bytes, Head]]:
        return {s: self._replica.frontier(s) for s in self._replica.spaces()}

    # -- what the node knows ------------------------------------------------------------------

    def status(self) -> SyncStatus:
        """Ask the node; if it has gone, say so."""
        try:
            status = self.client.call("status")
            reports = self.client.call("peers")
        except MeshcrewError as exc:
            return SyncStatus(running=False, detail=f"Not connected: {exc}")
        return sync_status(tuple(status.addrs), list(reports), None,
                           detail="This app is attached to the node already running for "
                                  "this home folder.")

    def holdings(self, space_id: bytes) -> Holdings:
        """This replica's frontier, and each member's (any of their devices') from the node's
        saved receipts."""
        return self.holdings_with(space_id, Receipts.load(self._home).frontiers(space_id))

    # -- writes, in the node ------------------------------------------------------------------

    def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        result = self.client.call(op, *args, **kwargs)
        self._notice_now()
        return result

    def _notice_now(self) -> None:
        """Refresh at once after a write instead of at the next poll."""
        now = self._all_frontiers()
        changed = frozenset(s for s in now if now.get(s) != self._frontiers.get(s))
        self._frontiers = now
        if changed:
            self.emit(SpacesChanged(changed))

    def create_space(self, name: str, *, kind: SpaceKind | str = SpaceKind.CREW,
                     purpose: str = "", parent: bytes | None = None,
                     rhythm: Rhythm | None = None, history: bool = True) -> bytes:
        """Found a space, in the node."""
        space_id: bytes = self._call("create_space", name, kind=SpaceKind(kind),
                                     purpose=purpose, parent=parent, rhythm=rhythm,
                                     history=history)
        return space_id

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int) -> str:
        """An invite with the node's addresses."""
        code: str = self._call("invite", space_id, uses=uses, expires_ms=expires_ms)
        return code

    async def join(self, code: str) -> bytes:
        """Join through the node (it reaches the inviter), reporting its progress."""
        loop = asyncio.get_running_loop()

        def progress(step: object) -> None:
            if isinstance(step, NodeJoinProgress):
                event = JoinProgress(step.done, step.total or None,
                                     STAGES.get(step.stage, step.stage))
                loop.call_soon_threadsafe(self.emit, event)

        space_id: bytes = await asyncio.to_thread(self.client.call, "join", code,
                                                  progress=progress)
        self._notice_now()
        return space_id

    def checkin(self, space_id: bytes, *, text: str, energy: int = 3,
                compass: Mapping[str, int] | None = None, ask: str | None = None) -> bytes:
        """Check in, in the node."""
        record_id: bytes = self._call("checkin", space_id, text=text, energy=energy,
                                      compass=dict(compass or {}), ask=ask)
        return record_id

    def reply(self, record_id: bytes, *, text: str) -> bytes:
        """Reply, in the node."""
        made: bytes = self._call("reply", record_id, text=text)
        return made

    def react(self, record_id: bytes, *, emoji: str) -> bytes:
        """React, in the node."""
        made: bytes = self._call("react", record_id, emoji=emoji)
        return made

    def post(self, space_id: bytes, post: Post) -> bytes:
        """Post, in the node."""
        made: bytes = self._call("post", space_id, post)
        return made

    def leave(self, space_id: bytes) -> bytes:
        """Leave, in the node."""
        made: bytes = self._call("leave", space_id)
        return made

    def propose_removal(self, space_id: bytes, member: bytes) -> bytes:
        """Propose a removal, in the node."""
        made: bytes = self._call("propose_removal", space_id, member)
        return made

    def consent(self, space_id: bytes, proposal_id: bytes) -> bytes:
        """Consent to a removal, in the node."""
        made: bytes = self._call("consent", space_id, proposal_id)
        return made

    def propose(self, space_id: bytes, *, title: str, text: str = "",
                deadline_ms: int | None = None, change: SettingsChange | None = None) -> bytes:
        """Make a proposal, in the node."""
        made: bytes = self._call("propose", space_id, title=title, text=text,
                                 deadline_ms=deadline_ms, change=change)
        return made

    def change_settings(self, space_id: bytes, change: SettingsChange | None = None, *,
                        by: bytes | None = None) -> bytes:
        """Change the settings, in the node."""
        made: bytes = self._call("change_settings", space_id, change, by=by)
        return made

    def answer(self, proposal_id: bytes, *, position: Position | str, reason: str = "") -> bytes:
        """Answer a proposal, in the node."""
        made: bytes = self._call("answer", proposal_id, position=position,
                                 reason=reason)
        return made

    def amend_proposal(self, proposal_id: bytes, *, title: str | None = None,
                       text: str | None = None) -> bytes:
        """Amend a proposal, in the node."""
        made: bytes = self._call("amend_proposal", proposal_id, title=title, text=text)
        return made

    def withdraw_proposal(self, proposal_id: bytes, *, note: str = "") -> bytes:
        """Withdraw a proposal, in the node."""
        made: bytes = self._call("withdraw_proposal", proposal_id, note=note)
        return made

    def revoke_invite(self, space_id: bytes, invite_id: bytes) -> bytes:
        """Revoke an invite, in the node."""
        made: bytes = self._call("revoke_invite", space_id, invite_id)
        return made

    # -- a member's devices, in the node ------------------------------------------------------

    def devices(self) -> list[DeviceEntry]:
        """This member's devices, as the node lists them."""
        found: list[DeviceEntry] = self.client.call("devices")
        return found

    def revoke_device(self, device: bytes) -> list[bytes]:
        """Revoke a device, in the node."""
        made: list[bytes] = self._call("revoke_device", device)
        return made

    async def link_device(self, code: str) -> LinkResult:
        """Link a new device through the node (it reaches the device)."""
        result: LinkResult = await asyncio.to_thread(self.client.call, "link_device", code)
        self._notice_now()
        return result

    async def wait_for_link(self, show: Callable[[str], None], *, within_s: float = LINK_WAIT_S,
                            on_records: Callable[[int], None] | None = None
                            ) -> LinkResult | None:
        """Refused: a node runs for this home folder, so it has an identity already."""
        raise IdentityError("This home folder already holds an identity; link a new laptop "
                            "from a fresh home folder.")

