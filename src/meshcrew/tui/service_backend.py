"""The backends over a member service: :class:`ServiceReads`, the reads of the
:class:`~meshcrew.tui.backend.Backend` protocol from a member service over a replica (shared with
:class:`~meshcrew.tui.attached.AttachedBackend`), and :class:`LocalBackend`, the backend of an app
without a network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from meshcrew.crypto import Rng
from meshcrew.errors import MeshcrewError, SpaceError
from meshcrew.identity import Identity
from meshcrew.records import Head, Record
from meshcrew.service import (
    BoardView,
    CycleEntry,
    InviteEntry,
    Member,
    MemberEntry,
    MemberReads,
    PostEntry,
    ProposalEntry,
    RejectedEntry,
    RemovalEntry,
    SettingsChangeEntry,
    SettingsEntry,
    SpaceSummary,
)
from meshcrew.service.posting import make_post_of_kind
from meshcrew.service.snapshots import SnapshotView
from meshcrew.spaces import (
    Position,
    Post,
    PostKind,
    Rhythm,
    SettingsChange,
    SpaceKind,
    decode_invite_code,
)
from meshcrew.store import Replica
from meshcrew.tui.backend import BackendEvent, EventSink, JoinProgress, SpacesChanged
from meshcrew.tui.device_calls import OfflineDeviceCalls
from meshcrew.tui.health import OFFLINE, Holdings, SyncStatus, member_holdings


class ServiceReads:
    """The reads of the :class:`~meshcrew.tui.backend.Backend` protocol, from a member service
    over a replica.

    Subclasses add the writes and what a node knows. Without a node, :meth:`status` is
    :data:`OFFLINE` and :meth:`holdings` knows only what this replica holds.
    """

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []

    @property
    def reads(self) -> MemberReads:
        """The member service the reads go to."""
        raise NotImplementedError

    def emit(self, event: BackendEvent) -> None:
        """Send an event to every subscriber."""
        for sink in self._sinks:
            sink(event)

    def subscribe(self, sink: EventSink) -> None:
        """Send later events to ``sink``."""
        self._sinks.append(sink)

    @property
    def identity(self) -> Identity:
        """This member."""
        return self.reads.identity

    @property
    def home_path(self) -> Path:
        """The replica's home folder."""
        return self.reads.replica.home.path

    def now(self) -> int:
        """The service's clock."""
        return self.reads.now()

    def record_count(self) -> int:
        """See :meth:`Replica.record_count`."""
        return self.reads.replica.record_count()

    def prepare(self, progress: Callable[[int, int, str | None], None]) -> None:
        """See :meth:`MemberReads.prepare` (the fold behind the snapshots: :meth:`complete`)."""
        self.reads.prepare(progress, complete=False)

    def complete(self) -> None:
        """See :meth:`MemberReads.complete`."""
        self.reads.complete()

    def spaces(self) -> list[SpaceSummary]:
        """See :meth:`Member.spaces`."""
        return self.reads.spaces()

    def summary(self, space_id: bytes) -> SpaceSummary:
        """See :meth:`Member.summary`."""
        return self.reads.summary(space_id)

    def members(self, space_id: bytes) -> list[MemberEntry]:
        """See :meth:`Member.members`."""
        return self.reads.members(space_id)

    def log(self, space_id: bytes, *, events: bool = False) -> list[PostEntry]:
        """See :meth:`Member.log`."""
        return self.reads.log(space_id, events=events)

    def cycle(self, space_id: bytes) -> CycleEntry:
        """See :meth:`Member.cycle`."""
        return self.reads.cycle(space_id)

    def energy(self, space_id: bytes) -> dict[bytes, list[tuple[int, int]]]:
        """See :meth:`Member.energy`."""
        return self.reads.energy(space_id)

    def board(self, space_id: bytes) -> BoardView:
        """See :meth:`Member.board`."""
        return self.reads.board(space_id)

    def removals(self, space_id: bytes) -> list[RemovalEntry]:
        """See :meth:`Member.removals`."""
        return self.reads.removals(space_id)

    def rejected(self, space_id: bytes | None = None, *, limit: int = 100) -> list[RejectedEntry]:
        """See :meth:`Member.rejected`."""
        return self.reads.rejected(space_id, limit=limit)

    def proposals(self, space_id: bytes) -> list[ProposalEntry]:
        """See :meth:`Member.proposals`."""
        return self.reads.proposals(space_id)

    def proposal(self, proposal_id: bytes) -> ProposalEntry:
        """See :meth:`Member.proposal`."""
        return self.reads.proposal(proposal_id)

    def invites(self, space_id: bytes) -> list[InviteEntry]:
        """See :meth:`Member.invites`."""
        return self.reads.invites(space_id)

    def settings(self, space_id: bytes) -> SettingsEntry:
        """See :meth:`Member.settings`."""
        return self.reads.settings(space_id)

    def settings_history(self, space_id: bytes) -> list[SettingsChangeEntry]:
        """See :meth:`Member.settings_history`."""
        return self.reads.settings_history(space_id)

    def make_post(self, kind: PostKind | str, **fields: object) -> Post:
        """Build a post from typed values (no signing: the same everywhere)."""
        return make_post_of_kind(kind, **fields)

    def status(self) -> SyncStatus:
        """:data:`OFFLINE`: no node."""
        return OFFLINE

    def holdings(self, space_id: bytes) -> Holdings:
        """Only what this replica holds, as this member's holdings."""
        return self.holdings_with(space_id, {})

    def holdings_with(self, space_id: bytes, peers: Mapping[bytes, Mapping[bytes, Head]]
                      ) -> Holdings:
        """This replica's frontier and the peers' (per peer key, as sync sessions showed
        them), per member: a member holds what the member key or any of their current devices
        holds, this laptop included."""
        frontiers = {key: {a: h.seq for a, h in heads.items()} for key, heads in peers.items()}
        frontiers[self.reads.me] = {a: h.seq for a, h in
                                    self.reads.replica.frontier(space_id).items()}
        return member_holdings(frontiers, self.device_members(space_id))

    def device_members(self, space_id: bytes) -> dict[bytes, bytes]:
        """Each current device of the space with its member key (from the snapshot while the
        view comes from one not folded yet: no fold for it)."""
        try:
            view = self.reads.view(space_id)
        except MeshcrewError:
            return {}
        if isinstance(view, SnapshotView) and not view.complete:
            return view.device_members
        return {d.key: d.member for d in view.state.devices.values() if d.revoked_by is None}


class LocalBackend(OfflineDeviceCalls, ServiceReads):
    """The member service over the local replica, with no network.

    It writes the replica itself, so it must be the replica's only writer (it holds the
    writer lock through the replica). :meth:`join` works only when the space's records are in
    the replica already (imported from a file).

    Args:
        replica: the replica, opened for writing.
        identity: this member.
        clock: the current time in UTC ms.
        rng: random bytes (keys, nonces, invite secrets).
    """

    def __init__(self, replica: Replica, identity: Identity, *, clock: Callable[[], int],
                 rng: Rng = os.urandom) -> None:
        super().__init__()
        self.service = Member(replica, identity, clock=clock, rng=rng,
                              on_records=self.records_written)

    @property
    def reads(self) -> MemberReads:
        """The member service (reads and writes)."""
        return self.service

    def records_written(self, records: list[Record]) -> None:
        """Tell subscribers which spaces gained records (the service's ``on_records``)."""
        self.emit(SpacesChanged(frozenset(r.space_id for r in records)))

    def create_space(self, name: str, *, kind: SpaceKind | str = SpaceKind.CREW,
                     purpose: str = "", parent: bytes | None = None,
                     rhythm: Rhythm | None = None, history: bool = True) -> bytes:
        """See :meth:`Member.create_space`."""
        return self.service.create_space(name, kind=kind, purpose=purpose, parent=parent,
                                         rhythm=rhythm, history=history)

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int) -> str:
        """See :meth:`Member.invite` (no addresses: no node listens)."""
        return self.service.invite(space_id, uses=uses, expires_ms=expires_ms)

    async def join(self, code: str) -> bytes:
        """Join a space whose records this replica already holds.

        Raises:
            InviteCodeError: if the code is damaged.
            SpaceError: if the space's records are not here (nothing can fetch them without a
                node), or the invite has expired or been used.
        """
        invite = decode_invite_code(code)
        if not self.service.replica.frontier(invite.space_id):
            raise SpaceError("The inviter cannot be reached: no node runs in this app, and this "
                             "replica holds none of that space's records. Start meshcrew with "
                             "its node, or import the inviter's export first.")
        self.emit(JoinProgress(0, None, "joining from the records in this replica"))
        return self.service.join(code)

    def checkin(self, space_id: bytes, *, text: str, energy: int = 3,
                compass: Mapping[str, int] | None = None, ask: str | None = None) -> bytes:
        """See :meth:`Member.checkin`."""
        return self.service.checkin(space_id, text=text, energy=energy, compass=compass,
                                    ask=ask)

    def reply(self, record_id: bytes, *, text: str) -> bytes:
        """See :meth:`Member.reply`."""
        return self.service.reply(record_id, text=text)

    def react(self, record_id: bytes, *, emoji: str) -> bytes:
        """See :meth:`Member.react`."""
        return self.service.react(record_id, emoji=emoji)

    def post(self, space_id: bytes, post: Post) -> bytes:
        """See :meth:`Member.post`."""
        return self.service.post(space_id, post)

    def leave(self, space_id: bytes) -> bytes:
        """See :meth:`Member.leave`."""
        return self.service.leave(space_id)

    def propose_removal(self, space_id: bytes, member: bytes) -> bytes:
        """See :meth:`Member.propose_removal`."""
        return self.service.propose_removal(space_id, member)

    def consent(self, space_id: bytes, proposal_id: bytes) -> bytes:
        """See :meth:`Member.consent`."""
        return self.service.consent(space_id, proposal_id)

    def propose(self, space_id: bytes, *, title: str, text: str = "",
                deadline_ms: int | None = None, change: SettingsChange | None = None) -> bytes:
        """See :meth:`Member.propose`."""
        return self.service.propose(space_id, title=title, text=text, deadline_ms=deadline_ms,
                                    change=change)

    def change_settings(self, space_id: bytes, change: SettingsChange | None = None, *,
                        by: bytes | None = None) -> bytes:
        """See :meth:`Member.change_settings`."""
        return self.service.change_settings(space_id, change, by=by)

    def answer(self, proposal_id: bytes, *, position: Position | str, reason: str = "") -> bytes:
        """See :meth:`Member.answer`."""
        return self.service.answer(proposal_id, position=position, reason=reason)

    def amend_proposal(self, proposal_id: bytes, *, title: str | None = None,
                       text: str | None = None) -> bytes:
        """See :meth:`Member.amend_proposal`."""
        return self.service.amend_proposal(proposal_id, title=title, text=text)

    def withdraw_proposal(self, proposal_id: bytes, *, note: str = "") -> bytes:
        """See :meth:`Member.withdraw_proposal`."""
        return self.service.withdraw_proposal(proposal_id, note=note)

    def revoke_invite(self, space_id: bytes, invite_id: bytes) -> bytes:
        """See :meth:`Member.revoke_invite`."""
        return self.service.revoke_invite(space_id, invite_id)
