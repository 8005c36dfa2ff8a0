"""The read half of the member service: a replica, an identity, and a view per space.

:class:`MemberReads` answers every question the CLI and the TUI ask, from the replica alone;
:class:`~meshcrew.service.member.Member` adds the writes. A
:class:`~meshcrew.service.views.SpaceView` per space is kept until the space's frontier in the
replica changes (one small query per read decides). When a space only gained posts, the new
view extends the old one (only the new records are folded in and decrypted); otherwise the
space is folded again. With a read-only replica this still sees what the writer adds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from meshcrew.collector import paused
from meshcrew.errors import AmbiguousName, MeshcrewError, UnknownName
from meshcrew.identity import Identity, peer_id_of
from meshcrew.records import Head
from meshcrew.service.entries import (
    BoardView,
    CarrierEntry,
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
    ThreadEntry,
)
from meshcrew.service.lean_spaces import LeanSpaces
from meshcrew.service.resolve import pick_member, pick_record, pick_space
from meshcrew.service.snapshots import SnapshotView, ViewSnapshots
from meshcrew.service.transfer import store_refusal
from meshcrew.service.views import SpaceView
from meshcrew.spaces import PostKind, decode_invite_code
from meshcrew.spaces import views as domain_views
from meshcrew.spaces.invites import CODE_PREFIX
from meshcrew.store import Replica

log = logging.getLogger(__name__)

SNAPSHOT_ABOVE = 5_000
"""Records from which a space's view is worth keeping in a snapshot when the app closes."""

PREPARE_ABOVE = 20_000
"""Records from which opening every space takes long enough (about a second on a laptop) to do
it in a worker thread: the node before it starts, the app while it shows its progress."""

EXTEND_UP_TO = 4_096
"""Most new records a view is extended by; past it (a catch-up by sync, say) the space is
folded again from lean records (see :meth:`Replica.space_records`), which hold half the memory
of the records an extension keeps."""

_STATUS_ORDER = {"active": 0, "left": 1, "removed": 2, "outsider": 3}


class ViewCache:
    """The views of one member's spaces, which several readers of one replica may share.

    The app and its in-process node each hold a member service over the same replica; sharing
    the cache lets whichever prepares first (see :meth:`MemberReads.prepare`) do it for both.
    """

    def __init__(self, member: bytes) -> None:
        self.member = member
        self.views: dict[bytes, SpaceView] = {}
        self.expired: dict[bytes, int] = {}
        """Per space, how many husks its view was made with (an expiry changes no frontier)."""
        self.preparing = threading.Lock()
        self.kept: dict[bytes, SpaceView] = {}
        """Per space, the view its snapshot in the home folder was made from or made into."""


class MemberReads:
    """What this member can read, over one replica (which may be read-only).

    Args:
        replica: the member's replica.
        identity: the member's identity (its keys open the spaces).
        clock: the current time in UTC milliseconds (for cycles and upcoming gatherings).
        views: a cache of views to share with another reader of the same replica and member
            (default: its own).
        snapshots: whether :meth:`prepare` takes views from snapshots in the home folder and
            writes them (see :mod:`meshcrew.service.snapshots`).
    """

    def __init__(self, replica: Replica, identity: Identity, *,
                 clock: Callable[[], int], views: ViewCache | None = None,
                 snapshots: bool = True) -> None:
        self.replica = replica
        self.identity = identity
        self._clock = clock
        self.views = views or ViewCache(identity.public_key)
        if self.views.member != identity.public_key:
            raise ValueError("a view cache serves one member")
        self._views = self.views.views
        self._preparing = self.views.preparing
        self._snapshots = snapshots
        self.lean = LeanSpaces(replica, identity)
        """Each space's membership and settings without its posts in memory (what a node that
        serves no screen needs; see :mod:`meshcrew.service.lean_spaces`)."""

    @property
    def me(self) -> bytes:
        """This member's public key."""
        return self.identity.public_key

    def now(self) -> int:
        """The service's clock (UTC ms)."""
        return self._clock()

    # -- reads --------------------------------------------------------------------------------

    def view(self, space_id: bytes) -> SpaceView:
        """The space as this member sees it now (kept until its records change).

        Raises:
            UnknownName: if the replica holds no accepted record of the space.
        """
        frontier = self.replica.frontier(space_id)
        if not frontier:
            self._views.pop(space_id, None)
            raise UnknownName(f"This replica holds no space with id {space_id.hex()}.")
        cached = self._views.get(space_id)
        expired = self.replica.expired_count(space_id)
        if cached is not None and self.views.expired.get(space_id, 0) != expired:
            cached = None  # posts expired: let go of their plaintext, fold the husks
        if cached is not None and cached.frontier == frontier:
            return cached
        view = self._follow(cached, frontier) if cached is not None else None
        if view is None:
            records = self.replica.space_records(space_id, lean=True)
            with paused(len(records)):
                view = SpaceView.folded(space_id, records, frontier, self.identity)
        self._views[space_id] = view
        self.views.expired[space_id] = expired
        return view

    def _follow(self, cached: SpaceView, frontier: Mapping[bytes, Head]) -> SpaceView | None:
        """The cached view extended by what arrived since, if the records only grew by posts.

        The new view's frontier is the one its records give (the replica may have taken more
        since ``frontier`` was read; the next read then extends again).
        """
        if any(frontier.get(author, Head(0, b"")).seq < head.seq
               for author, head in cached.frontier.items()):
            return None  # the replica lost records (a fork came to light): fold anew
        arrived = sum(head.seq - cached.frontier.get(author, Head(0, b"")).seq
                      for author, head in frontier.items())
        if arrived > EXTEND_UP_TO:
            return None
        new = self.replica.records_after(cached.space_id, cached.frontier, limit=2**62)
        return cached.extended(new)

    def prepare(self, progress: Callable[[int, int, str | None], None] | None = None, *,
                complete: bool = True) -> None:
        """Do the slow part of the first reads of every space now, on a connection of its own.

        Takes each space's view from its snapshot in the home folder when there is one made
        for exactly the records the replica holds (see :mod:`meshcrew.service.snapshots`);
        otherwise folds and decrypts the space and builds its log, over a read-only replica of
        the same home, and writes the snapshot for the next start. Keeps the views for the
        reads that follow. Safe to call from a worker thread while this reader is used
        elsewhere (views are immutable; a view is kept only if none is yet), and from two at
        once (the in-process node and the app's home screen): the second waits for the first
        and finds the work done.

        Args:
            progress: called with (spaces done, spaces in all, name of the space done).
            complete: then fold the spaces whose views came from snapshots too (see
                :meth:`complete`); the app lists the spaces first, and does it after.
        """
        snapshots = ViewSnapshots(self.replica.home, self.identity) if self._snapshots else None
        with self._preparing, Replica.open(self.replica.home, read_only=True) as replica, \
                paused(replica.record_count()):
            other = MemberReads(replica, self.identity, clock=self._clock, snapshots=False)
            held = replica.spaces()
            for done, space_id in enumerate(held, start=1):
                view = self._views.get(space_id)  # a second caller waits, then finds them
                if view is None:
                    view = self._open(other, space_id, snapshots)
                if progress is not None:
                    name = view.meta.name if view is not None and view.meta else None
                    progress(done, len(held), name)
        if complete:
            self.complete()  # outside the lock: another caller may list the spaces meanwhile

    def complete(self) -> None:
        """Fold the spaces whose views came from snapshots (see :meth:`prepare`).

        A view from a snapshot answers the first reads of the home and space screens at once,
        but a write, an arrival or a thread needs the fold; calling this in a worker thread
        after :meth:`prepare` does it ahead of them. A read that needs a fold under way waits
        for it rather than doing it twice.
        """
        for view in list(self._views.values()):
            if isinstance(view, SnapshotView):
                view.fold_now()

    def _open(self, other: MemberReads, space_id: bytes,
              snapshots: ViewSnapshots | None) -> SpaceView | None:
        """One space's view for :meth:`prepare`, from its snapshot or folded (and kept)."""
        replica = other.replica
        view: SpaceView | None = None
        if snapshots is not None:
            expired = replica.expired_count(space_id)
            view = snapshots.load(space_id, replica.frontier(space_id), expired)
        if view is None:
            try:
                view = other.view(space_id)
                view.post_entries  # noqa: B018 - computing it is the point
                view.summary(self.now())
            except MeshcrewError:
                return None  # the reads will meet it again, and say what is wrong
            expired = other.views.expired[space_id]
            if snapshots is not None:
                try:
                    snapshots.save(view, expired, self.now())
                except OSError as exc:
                    log.warning("could not keep the view of space %s: %s", space_id.hex()[:12],
                                exc)
        if self._views.setdefault(space_id, view) is view:
            self.views.expired[space_id] = expired
            if snapshots is not None:
                self.views.kept[space_id] = view
        return view

    def keep_snapshots(self, *, above: int = SNAPSHOT_ABOVE) -> int:
        """Write the snapshot of every kept view of a big space that changed since its
        snapshot was read or written (when the app closes, say), so that the next start lists
        it at once; returns how many were written.

        Only a view of exactly the records the replica holds now is written. A write that
        fails is logged, not raised: the next start folds that space.

        Args:
            above: from how many records a space is worth a snapshot.
        """
        if not self._snapshots:
            return 0
        snapshots = ViewSnapshots(self.replica.home, self.identity)
        written = 0
        for space_id, view in list(self._views.items()):
            if self.views.kept.get(space_id) is view or len(view.state.records) < above:
                continue
            expired = self.views.expired.get(space_id, 0)
            if (self.replica.frontier(space_id) != view.frontier
                    or self.replica.expired_count(space_id) != expired):
                continue  # records came since: the next start folds, as it must
            try:
                snapshots.save(view, expired, self.now())
            except OSError as exc:
                log.warning("could not keep the view of space %s: %s", space_id.hex()[:12], exc)
                continue
            self.views.kept[space_id] = view
            written += 1
        return written

    def spaces(self) -> list[SpaceSummary]:
        """Every space the replica holds: this member's current ones first, then by name."""
        now = self.now()
        found = [self.view(sid).summary(now) for sid in self.replica.spaces()]
        return sorted(found, key=lambda s: (_STATUS_ORDER[s.my_status], s.name is None,
                                            (s.name or "").casefold(), s.id))

    def summary(self, space_id: bytes) -> SpaceSummary:
        """One space's summary."""
        return self.view(space_id).summary(self.now())

    def members(self, space_id: bytes) -> list[MemberEntry]:
        """Everyone who is or was a member: current members first, then by name."""
        return list(self.view(space_id).member_entries)

    def carriers(self, space_id: bytes) -> list[CarrierEntry]:
        """The carriers the space names now, in the order they were named."""
        view = self.view(space_id)
        names = {m.key: m.name for m in view.member_entries}
        found = sorted(view.state.carriers.values(), key=lambda c: (c.added_ts, c.key))
        return [CarrierEntry(c.key, peer_id_of(c.key), space_id, c.added_by,
                             names.get(c.added_by, "?"), c.added_ts) for c in found]

    def log(self, space_id: bytes, *, events: bool = False) -> list[PostEntry]:
        """The readable posts of a space, oldest first (signed time, then id).

        Args:
            space_id: the space.
            events: also list membership records (genesis, invite, join, leave, remove,
                consent, keys) and posts this member holds no key for (kind ``locked``).
        """
        view = self.view(space_id)
        return list(view.all_entries if events else view.post_entries)

    def thread(self, record_id: bytes) -> ThreadEntry:
        """A readable post with its replies, reactions and follow-ups."""
        return self._post_view(record_id).thread(record_id)

    def cycle(self, space_id: bytes) -> CycleEntry:
        """The current rhythm cycle: who has checked in and who has not yet."""
        return self.view(space_id).cycle(self.now())

    def energy(self, space_id: bytes) -> dict[bytes, list[tuple[int, int]]]:
        """Per member key: ``(ts, energy)`` of each check-in, oldest first."""
        return {key: list(points) for key, points in self.view(space_id).energy.items()}

    def compass(self, space_id: bytes, member: bytes) -> dict[str, list[tuple[int, int]]]:
        """One member's compass scores over time: scale → ``(ts, score)``, oldest first."""
        return domain_views.compass_series(self.view(space_id).opened, member)

    def board(self, space_id: bytes) -> BoardView:
        """Asks and offers with follow-ups, upcoming gatherings, crew cards, looking for crew."""
        return self.view(space_id).board(self.now())

    def proposals(self, space_id: bytes) -> list[ProposalEntry]:
        """The proposals of a space with who answered what and their outcome, oldest first."""
        return self.view(space_id).proposal_entries(self.now())

    def proposal(self, proposal_id: bytes) -> ProposalEntry:
        """One proposal, by its record id.

        Raises:
            UnknownName: if no readable proposal has that id.
        """
        view = self._post_view(proposal_id, what="proposal")
        found = view.proposals(self.now()).get(proposal_id)
        if found is None:
            raise UnknownName(f"The post {proposal_id.hex()[:12]} is not a proposal.")
        return view.proposal_entry(found)

    def resolve_proposal_post(self, text: str) -> bytes:
        """The proposal (of any space) whose id starts with ``text``."""
        ids: list[bytes] = []
        labels: dict[bytes, str] = {}
        for sid in self.replica.spaces():
            view = self.view(sid)
            for post in view.opened.of_kind(PostKind.PROPOSAL):
                ids.append(post.record_id)
                labels[post.record_id] = f"{getattr(post.post, 'title', '')!r}"
        return pick_record(text, ids, what="proposal", labels=labels,
                           listing="meshcrew proposals SPACE")

    def settings(self, space_id: bytes) -> SettingsEntry:
        """A space's settings now (changes made by passed proposals included)."""
        return self.view(space_id).settings_entry()

    def settings_history(self, space_id: bytes) -> list[SettingsChangeEntry]:
        """The changes of a space's settings that counted, oldest first."""
        return self.view(space_id).settings_changes()

    def invites(self, space_id: bytes) -> list[InviteEntry]:
        """The invites of a space, newest first, and whether each can still admit someone."""
        view = self.view(space_id)
        now = self.now()
        rows = []
        for invite in view.state.invites.values():
            left = not invite.revoked and len(invite.used_by) < invite.uses
            rows.append(InviteEntry(
                id=invite.id, space=space_id, inviter=invite.author,
                inviter_name=view.name_of(invite.author), uses=invite.uses,
                used=len(invite.used_by), expires_ms=invite.expires_ms,
                revoked=invite.revoked, open=left and now <= invite.expires_ms,
                ts=view.state.records[invite.id].ts))
        return sorted(rows, key=lambda r: (-r.ts, r.id))

    def resolve_invite(self, text: str) -> tuple[bytes, bytes]:
        """The (space, invite) an invite code or a unique start of an invite's id names."""
        if text.strip().lower().startswith(CODE_PREFIX):
            code = decode_invite_code(text)
            self.view(code.space_id)  # refuses a space this replica does not hold
            return code.space_id, code.invite_id
        found: dict[bytes, bytes] = {}
        for sid in self.replica.spaces():
            for invite_id in self.view(sid).state.invites:
                found[invite_id] = sid
        invite_id = pick_record(text, found, what="invite", listing="meshcrew invites SPACE")
        return found[invite_id], invite_id

    def removals(self, space_id: bytes) -> list[RemovalEntry]:
        """Removal proposals of a space and their consents, oldest first."""
        return self.view(space_id).removal_entries()

    def rejected(self, space_id: bytes | None = None, *, limit: int = 100) -> list[RejectedEntry]:
        """Refused records with their reasons, newest first.

        The replica's reject log (envelope and chain refusals; with ``space_id``, only the
        chain refusals of that space, since an envelope refusal names no space it can be
        trusted for) and the space rules' refusals of each space.
        """
        rows: list[RejectedEntry] = []
        for sid in self.replica.spaces() if space_id is None else [space_id]:
            rows += self.view(sid).refusals()
        rows += [store_refusal(e) for e in self.replica.rejects(limit=limit, space_id=space_id)]
        rows.sort(key=lambda r: (-r.at_ms, r.record_id or b""))
        return rows[:limit]

    # -- naming -------------------------------------------------------------------------------

    def resolve_space(self, text: str) -> bytes:
        """The space named by a full hex id, a unique hex prefix, or a unique name."""
        held = self.replica.spaces()
        lowered = text.strip().lower()
        if len(lowered) == 64:
            exact = next((sid for sid in held if sid.hex() == lowered), None)
            if exact is not None:
                return exact
        names = {}
        for sid in held:
            meta = self.view(sid).meta
            names[sid] = meta.name if meta is not None else None
        return pick_space(text, names)

    def resolve_member(self, space_id: bytes, text: str) -> bytes:
        """A member of the space named by key prefix, fingerprint or unique display name."""
        return pick_member(text, [(m.key, m.name, m.fingerprint)
                                  for m in self.view(space_id).member_entries])

    def resolve_record(self, text: str, *, posts_only: bool = False) -> bytes:
        """The record (or readable post) of any space whose id starts with ``text``."""
        ids: list[bytes] = []
        labels: dict[bytes, str] = {}
        for sid in self.replica.spaces():
            view = self.view(sid)
            if posts_only:
                for rid, post in view.posts_by_id.items():
                    ids.append(rid)
                    labels[rid] = f"{post.kind.value} by {view.name_of(post.author)}"
            else:
                ids += view.state.records
        return pick_record(text, ids, what="post" if posts_only else "record", labels=labels)

    def resolve_proposal(self, space_id: bytes, text: str) -> bytes:
        """A removal proposal by id prefix, or by the member its one open proposal names."""
        removals = self.view(space_id).state.removals
        try:
            return pick_record(text, removals, what="removal proposal")
        except UnknownName:
            pass
        try:
            target = self.resolve_member(space_id, text)
        except UnknownName:
            raise UnknownName(f"No removal proposal in this space matches {text!r}; see them "
                              "with: meshcrew members SPACE") from None
        open_ones = sorted(r.id for r in removals.values()
                           if r.member == target and not r.effective)
        if len(open_ones) == 1:
            return open_ones[0]
        if not open_ones:
            raise UnknownName(f"No open removal proposal names {text!r}.")
        raise AmbiguousName(f"{len(open_ones)} open proposals name {text!r}; give the id of "
                            "one (see: meshcrew members SPACE).")

    def export(self, space_id: bytes) -> list[bytes]:
        """Every accepted record of a space, each author's in chain order."""
        self.view(space_id)  # refuses an unknown space
        return [r.raw for r in self.replica.records_after(space_id, {}, limit=2**62)]

    def _post_view(self, record_id: bytes, *, what: str = "post") -> SpaceView:
        record = self.replica.get(record_id)
        view = self.view(record.space_id) if record is not None else None
        if view is None or record_id not in view.posts_by_id:
            raise UnknownName(f"No {what} you can read has the id {record_id.hex()}.")
        return view
