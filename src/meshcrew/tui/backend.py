"""What the app needs from the rest of meshcrew: the :class:`Backend` protocol and its events.

The app is given a backend through its constructor (as harlequin is given its adapter). The
reads and writes are the member service's (:class:`meshcrew.service.Member`), with the same
names and arguments; the rest is what only a node knows — :meth:`Backend.status` (peers,
addresses, when each peer last synced, when records last arrived) and :meth:`Backend.holdings`
(who holds which records, for receipts) — and :meth:`Backend.join`, which a node makes
asynchronous because it fetches the space first.

:class:`~meshcrew.tui.service_backend.LocalBackend` is the backend of an app without a network:
the member service over the local replica; it reports :data:`~meshcrew.tui.health.OFFLINE` and
what this replica holds.
:class:`~meshcrew.tui.node_backend.NodeBackend` hands the same calls to an in-process node;
:class:`~meshcrew.tui.attached.AttachedBackend` reads the replica and asks a node already
running for the home folder to write.

Events travel back as plain values (:data:`BackendEvent`) to the sink the app subscribes; the
app turns them into Textual messages (:mod:`meshcrew.tui.messages`). This module imports no
Textual, so the node can implement the protocol without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from meshcrew.identity import Identity
from meshcrew.service import (
    BoardView,
    CycleEntry,
    InviteEntry,
    MemberEntry,
    PostEntry,
    ProposalEntry,
    RejectedEntry,
    RemovalEntry,
    SettingsChangeEntry,
    SettingsEntry,
    SpaceSummary,
)
from meshcrew.spaces import (
    Position,
    Post,
    PostKind,
    Rhythm,
    SettingsChange,
    SpaceKind,
)
from meshcrew.tui.device_calls import DeviceCalls
from meshcrew.tui.health import Holdings, SyncStatus


@dataclass(frozen=True, slots=True)
class SpacesChanged:
    """Records were written or received in these spaces."""

    space_ids: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class PeersUpdated:
    """Connections or the peer book changed; read :meth:`Backend.status` again."""


@dataclass(frozen=True, slots=True)
class JoinProgress:
    """A join is under way.

    Attributes:
        received: records of the space received so far.
        expected: how many the inviter offered, None until known.
        stage: what happens now, for a person ("reaching the inviter", ...).
    """

    received: int
    expected: int | None
    stage: str


BackendEvent = SpacesChanged | PeersUpdated | JoinProgress
EventSink = Callable[[BackendEvent], None]


class Backend(DeviceCalls, Protocol):
    """Everything the screens read and do. Methods raise MeshcrewError with one sentence
    (a member's devices: :class:`~meshcrew.tui.device_calls.DeviceCalls`)."""

    @property
    def identity(self) -> Identity:
        """This member."""
        ...

    @property
    def home_path(self) -> Path:
        """The home folder everything lives in."""
        ...

    def now(self) -> int:
        """The current time (UTC ms) as the service sees it."""
        ...

    def subscribe(self, sink: EventSink) -> None:
        """Send every later event to ``sink`` (called in the app's thread)."""
        ...

    # -- reads (see meshcrew.service.Member) --------------------------------------------------

    def record_count(self) -> int:
        """How many records the replica holds, in all spaces."""
        ...

    def prepare(self, progress: Callable[[int, int, str | None], None]) -> None:
        """Do the slow part of the first reads now (see :meth:`MemberReads.prepare`).

        Called in a worker thread while the app shows that it is opening the spaces.
        """
        ...

    def complete(self) -> None:
        """Finish in the background what :meth:`prepare` left to the first reads that need it
        (see :meth:`MemberReads.complete`). Called in a worker thread once the spaces show."""
        ...

    def spaces(self) -> list[SpaceSummary]:
        """Every space the replica holds."""
        ...

    def summary(self, space_id: bytes) -> SpaceSummary:
        """One space's summary."""
        ...

    def members(self, space_id: bytes) -> list[MemberEntry]:
        """Everyone who is or was a member."""
        ...

    def log(self, space_id: bytes, *, events: bool = False) -> list[PostEntry]:
        """The readable posts, oldest first."""
        ...

    def cycle(self, space_id: bytes) -> CycleEntry:
        """The current rhythm cycle."""
        ...

    def energy(self, space_id: bytes) -> dict[bytes, list[tuple[int, int]]]:
        """Per member: ``(ts, energy)`` of each check-in, oldest first."""
        ...

    def board(self, space_id: bytes) -> BoardView:
        """Asks, offers, gatherings, crew cards, looking for a crew."""
        ...

    def removals(self, space_id: bytes) -> list[RemovalEntry]:
        """Removal proposals and their consents."""
        ...

    def proposals(self, space_id: bytes) -> list[ProposalEntry]:
        """Proposals with who answered what and their outcome, oldest first."""
        ...

    def proposal(self, proposal_id: bytes) -> ProposalEntry:
        """One proposal."""
        ...

    def invites(self, space_id: bytes) -> list[InviteEntry]:
        """The invites of a space, newest first."""
        ...

    def settings(self, space_id: bytes) -> SettingsEntry:
        """The settings of a space now."""
        ...

    def settings_history(self, space_id: bytes) -> list[SettingsChangeEntry]:
        """The changes of a space's settings, oldest first."""
        ...

    def rejected(self, space_id: bytes | None = None, *, limit: int = 100) -> list[RejectedEntry]:
        """Refused records with their reasons, newest first."""
        ...

    # -- what only a node knows ---------------------------------------------------------------

    def status(self) -> SyncStatus:
        """Peers, addresses, last syncs, last arrival; :data:`OFFLINE` without a node."""
        ...

    def holdings(self, space_id: bytes) -> Holdings:
        """Per member: the highest seq of each author's chain they are known to hold."""
        ...

    # -- writes -------------------------------------------------------------------------------

    def create_space(self, name: str, *, kind: SpaceKind | str = SpaceKind.CREW,
                     purpose: str = "", parent: bytes | None = None,
                     rhythm: Rhythm | None = None, history: bool = True) -> bytes:
        """Found a space; returns its id."""
        ...

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int) -> str:
        """Make an invite (the node adds its addresses); returns the code."""
        ...

    async def join(self, code: str) -> bytes:
        """Join with a code: fetch the space (reporting :class:`JoinProgress`), then join."""
        ...

    def checkin(self, space_id: bytes, *, text: str, energy: int = 3,
                compass: Mapping[str, int] | None = None, ask: str | None = None) -> bytes:
        """Check in."""
        ...

    def reply(self, record_id: bytes, *, text: str) -> bytes:
        """Reply to a post."""
        ...

    def react(self, record_id: bytes, *, emoji: str) -> bytes:
        """React to a post."""
        ...

    def make_post(self, kind: PostKind | str, **fields: object) -> Post:
        """Build a post from what a person typed (raises InputError)."""
        ...

    def post(self, space_id: bytes, post: Post) -> bytes:
        """Post an ask, offer, follow-up, gathering, crew card, ..."""
        ...

    def leave(self, space_id: bytes) -> bytes:
        """Leave a space."""
        ...

    def propose_removal(self, space_id: bytes, member: bytes) -> bytes:
        """Propose removing a member (counts as this member's consent)."""
        ...

    def consent(self, space_id: bytes, proposal_id: bytes) -> bytes:
        """Consent to a removal proposal."""
        ...

    def propose(self, space_id: bytes, *, title: str, text: str = "",
                deadline_ms: int | None = None, change: SettingsChange | None = None) -> bytes:
        """Put a proposal to the members (default deadline: the end of the next cycle)."""
        ...

    def change_settings(self, space_id: bytes, change: SettingsChange | None = None, *,
                        by: bytes | None = None) -> bytes:
        """Change a space's settings (a congregation's), or make a passed proposal's change."""
        ...

    def answer(self, proposal_id: bytes, *, position: Position | str, reason: str = "") -> bytes:
        """Answer a proposal: consent, stand aside or object."""
        ...

    def amend_proposal(self, proposal_id: bytes, *, title: str | None = None,
                       text: str | None = None) -> bytes:
        """Change this member's open proposal."""
        ...

    def withdraw_proposal(self, proposal_id: bytes, *, note: str = "") -> bytes:
        """Withdraw this member's open proposal."""
        ...

    def revoke_invite(self, space_id: bytes, invite_id: bytes) -> bytes:
        """Revoke an invite that can still admit someone."""
        ...
