"""The member service: everything one member can read and do, over their replica.

The CLI, the TUI and (later) the node's control socket all call these methods; each command of
the CLI is one call. Reads come from :class:`~meshcrew.service.reading.MemberReads`. Writes sign
a record as this member's next record in the space, append it to the replica, and tell
``on_records``. The proposals' actions are mixed in from :mod:`meshcrew.service.proposing`, the
devices' from :mod:`meshcrew.service.devices`.

Housekeeping that keeps a crew working needs no one to remember it:

* after records arrive (:meth:`Member.ingest`), a member who made the invite of a joiner rotates
  the keys so the joiner can read (or, if that inviter is gone, one member chosen by key does);
* before writing, a member rotates the keys if a departure left no current epoch;
* a member's first post in a space is preceded by their profile (their display name), posted
  as soon as they hold a key (at creation, or when the keys reach a joiner).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from meshcrew.crypto import Rng
from meshcrew.errors import InputError, ReplicaError, SpaceError, UnknownName
from meshcrew.identity import Identity
from meshcrew.records import NEW_SPACE, Record, RecordError, encode_husk, sign_record
from meshcrew.service.devices import DeviceActions
from meshcrew.service.entries import ExportReport, IngestReport, RejectedEntry
from meshcrew.service.posting import make_post, make_post_of_kind, not_posted_here
from meshcrew.service.proposing import ProposalActions
from meshcrew.service.reading import MemberReads, ViewCache
from meshcrew.service.records_file import read_records, write_records
from meshcrew.service.snapshots import ViewSnapshots
from meshcrew.service.transfer import ingest_records
from meshcrew.spaces import (
    COMPASS_SCALES,
    CheckIn,
    CrewCard,
    Draft,
    Post,
    PostKind,
    Profile,
    Reaction,
    Reply,
    Rhythm,
    SpaceKind,
    consent_to_removal,
    create_invite,
    create_space,
    decode_invite_code,
    drop_carrier,
    invite_code,
    invite_problem,
    join_space,
    leave_space,
    name_carrier,
    propose_removal,
    revoke_invite,
    rotate_keys,
    seal_post,
    writable_epoch,
)
from meshcrew.spaces.bodies import SealedBody
from meshcrew.spaces.cards import prove_card
from meshcrew.spaces.retention import Expiry, expiry, husk_stub
from meshcrew.spaces.settings import QUORUM_ALL, SpaceMeta, clean_text
from meshcrew.store import Replica

log = logging.getLogger("meshcrew.service")

MAX_ROTATIONS = 8
"""Rotations in a row for one change (a crowd of joiners needs several; see rotate_keys)."""

_INVITE_PROBLEMS = {
    "invite_unknown": "This invite is not among the records this replica holds; ask the inviter "
                      "for an export made after the invite (meshcrew export SPACE -o FILE).",
    "invite_revoked": "This invite no longer admits anyone: a member revoked it, or its maker "
                      "was removed from the space.",
    "invite_expired": "This invite has expired; ask for a new one.",
    "invite_exhausted": "This invite has already been used; ask for a new one.",
    "space_full": "This space is full.",
}


class Member(MemberReads, DeviceActions, ProposalActions):
    """What this member can read (see :class:`MemberReads`) and do, over one replica.

    Single-threaded: call it from one thread (or trio task) at a time. Only the process that
    holds the replica's writer lock can write.

    Args:
        replica: the member's replica.
        identity: the member's identity (it signs every record).
        clock: the current time in UTC milliseconds.
        rng: random bytes (keys, nonces, invite secrets).
        on_records: called with every record this member signs, and every record
            :meth:`ingest` accepts, so a node can publish them and a TUI refresh.
        views: a cache of views shared with another service over the same replica (see
            :class:`~meshcrew.service.reading.ViewCache`).
    """

    def __init__(self, replica: Replica, identity: Identity, *, clock: Callable[[], int],
                 rng: Rng = os.urandom,
                 on_records: Callable[[list[Record]], None] | None = None,
                 views: ViewCache | None = None) -> None:
        super().__init__(replica, identity, clock=clock, views=views)
        self._rng = rng
        self._on_records = on_records

    # -- writing: spaces and membership -------------------------------------------------------

    def create_space(self, name: str, *, kind: SpaceKind | str = SpaceKind.CREW,
                     purpose: str = "", parent: bytes | None = None,
                     rhythm: Rhythm | None = None, history: bool = True,
                     quorum: int = QUORUM_ALL, keep_checkins: int = 0,
                     keep_posts: int = 0) -> bytes:
        """Found a space (then post this member's profile in it); returns its id.

        Args:
            name: what the space is called (1 to 64 characters).
            kind: crew, dyad or congregation.
            purpose: what it is for (up to 500 characters).
            parent: the congregation a crew or dyad belongs to (this member must be in it).
            rhythm: the check-in rhythm (default weekly on Monday, UTC).
            history: whether joiners may read what was written before they joined.
            quorum: how much of the members (percent) must have answered a proposal by its
                deadline for it to pass without objection (default everyone).
            keep_checkins: how many rhythm cycles check-ins are kept (0: forever).
            keep_posts: how many rhythm cycles other posts are kept (0: forever).
        """
        try:
            space_kind = SpaceKind(kind)
        except ValueError:
            raise InputError(f"{kind!r} is not a kind of space (crew, dyad or "
                             "congregation).") from None
        if parent is not None:
            parent_view = self.view(parent)
            parent_view.require_member()
            if parent_view.state.kind is not SpaceKind.CONGREGATION:
                raise SpaceError("A crew or dyad can only belong to a congregation.")
        if type(quorum) is not int or not 1 <= quorum <= QUORUM_ALL:
            raise InputError(f"The quorum is a percentage from 1 to {QUORUM_ALL}.")
        try:
            meta = SpaceMeta(clean_text(name), clean_text(purpose), rhythm or Rhythm(), parent,
                             quorum, keep_checkins=keep_checkins, keep_posts=keep_posts)
        except RecordError as exc:
            raise InputError(f"Cannot create the space: {exc.detail}.") from None
        genesis = self._sign_and_append(None, create_space(
            self.identity.signing_key, space_kind, meta, self._rng, history=history))
        self._write_post(genesis.id, Profile(self.identity.name))
        return genesis.id

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int,
               addrs: tuple[str, ...] = ()) -> str:
        """Make an invite; returns the one-line code to give the person invited.

        Args:
            space_id: the space.
            uses: how many people it admits.
            expires_ms: the last instant (UTC ms) it may be used.
            addrs: this node's addresses, for the joiner's node to reach it.
        """
        view = self.view(space_id)
        view.require_member()
        if not view.holds_keys:
            raise SpaceError("You hold no key of this space yet, so you could not let a joiner "
                             "read; wait for the keys before inviting.")
        assert view.state.kind is not None
        if len(view.state.active) >= view.state.kind.max_members:
            raise SpaceError(f"This {view.state.kind.value} is full.")
        if expires_ms <= self.now():
            raise InputError("The invite would have expired already; give a later expiry.")
        made, secret = create_invite(view.state, self.me, expires_ms=expires_ms,
                                     rng=self._rng, uses=uses)
        record = self._sign_and_append(space_id, made)
        return invite_code(record, secret, addrs)

    def join(self, code: str) -> bytes:
        """Join the space of an invite code; returns the space id.

        The space's records (at least its genesis and the invite) must be in the replica
        already: the node fetches them from the inviter; offline, import the inviter's export
        first. Until the inviter rotates the keys, the new member can read nothing.
        """
        invite = decode_invite_code(code)
        if self.linked_to() is not None:  # it would join as a member of its own
            raise SpaceError("This laptop is a linked device of yours: join from the laptop "
                             "that holds your member key; this one follows the spaces joined "
                             "there when both nodes run.")
        try:
            view = self.view(invite.space_id)
        except UnknownName:
            raise SpaceError("This replica holds no records of the space this code is for; "
                             "import the inviter's export first (meshcrew join CODE --from "
                             "FILE), or let the node fetch them.") from None
        if view.is_member:
            raise SpaceError("You are already a member of this space.")
        if view.my_status == "removed":
            raise SpaceError("You were removed from this space by consent; an invite cannot "
                             "undo that.")
        problem = invite_problem(view.state, invite.invite_id, self._next_ts(invite.space_id))
        if problem is not None:
            raise SpaceError(_INVITE_PROBLEMS.get(problem.value, problem.sentence))
        self._sign_and_append(invite.space_id, join_space(invite, self.identity.signing_key))
        return invite.space_id

    def revoke_invite(self, space_id: bytes, invite_id: bytes) -> bytes:
        """Revoke an invite that can still admit someone; returns the revoke record's id.

        Any current member may. Every member's node then refuses a join with it
        (``invite_revoked``), however it reaches them; joins it had already admitted stand.
        """
        view = self.view(space_id)
        view.require_member()
        return self._sign_and_append(space_id, revoke_invite(view.state, self.me, invite_id)).id

    def expire_due(self, space_id: bytes) -> Expiry | None:
        """Delete from the disk the posts of a space whose retention has run out by now.

        Each becomes its husk in the replica (see :mod:`meshcrew.spaces.retention` and
        :meth:`Replica.expire`); the views let go of their plaintext. If this member's own
        newest record has expired, they re-post their profile first (unchanged), so that the
        chain has a newer record to be checked from and the post can go on every node.

        Returns:
            What expired and when the next post does; None while the settings are locked.
        """
        if space_id not in self._views and self.lean.keeps_everything(space_id):
            return Expiry(frozenset(), frozenset(), None)  # without folding every post
        view = self.view(space_id)
        meta = view.meta
        if meta is None:
            return None
        heads = {head.id for head in self.replica.frontier(space_id).values()}
        found = expiry(view.opened, meta, self.now(), heads)
        mine = self.replica.frontier(space_id).get(self.me)
        if mine is not None and mine.id in found.waiting and view.is_member:
            profiles = [p.post for p in view.opened.of_kind(PostKind.PROFILE)
                        if p.author == view.my_member]
            try:
                self._write_post(space_id, profiles[-1] if profiles
                                 else Profile(self.identity.name))
            except SpaceError:
                pass  # not let in, say: the post waits for a later pass
            else:
                view = self.view(space_id)
                heads = {head.id for head in self.replica.frontier(space_id).values()}
                found = expiry(view.opened, meta, self.now(), heads)
        husks = {}
        for rid in found.due:
            body = view.state.bodies[rid]
            assert isinstance(body, SealedBody)  # only posts expire
            husks[rid] = encode_husk(view.state.records[rid], husk_stub(body))
        if husks:
            self.replica.expire(husks)
            # The snapshot holds the expired posts' plaintext: no view is made from it again.
            ViewSnapshots(self.replica.home, self.identity).forget(space_id)
        return found

    def leave(self, space_id: bytes, *, expire_posts: bool = False) -> bytes:
        """Leave a space (always allowed); returns the leave record's id.

        With ``expire_posts`` this member's past check-ins and conversation posts expire at
        once on every member's node (and on this one: they are deleted here now); by default
        they stay, under the space's retention.
        """
        view = self.view(space_id)
        view.require_member()
        left = self._sign_and_append(space_id, leave_space(view.state, self.me,
                                                           expire_posts=expire_posts)).id
        if expire_posts:
            self.expire_due(space_id)
        return left

    def propose_removal(self, space_id: bytes, member: bytes) -> bytes:
        """Propose removing a member (it counts as this member's consent); returns its id."""
        view = self.view(space_id)
        view.require_member()
        return self._sign_and_append(space_id, propose_removal(view.state, self.me, member)).id

    def consent(self, space_id: bytes, proposal_id: bytes) -> bytes:
        """Consent to a removal proposal; returns the consent record's id."""
        view = self.view(space_id)
        view.require_member()
        proposal = view.state.removals.get(proposal_id)
        if proposal is not None and view.my_member in proposal.consents:
            raise SpaceError("You have already consented to this removal.")
        if proposal is not None and proposal.effective:
            raise SpaceError("This removal has already taken effect.")
        return self._sign_and_append(space_id,
                                     consent_to_removal(view.state, self.me, proposal_id)).id

    def add_carrier(self, space_id: bytes, carrier: bytes) -> bytes:
        """Name a carrier of a space (its public key), then rotate the keys so that it holds
        the transit key (it opens gossip, never a post); returns the carrier record's id."""
        view = self.view(space_id)
        view.require_member()
        named = self._sign_and_append(space_id, name_carrier(view.state, self.me, carrier)).id
        self._rotate_for_carriers(space_id)
        return named

    def drop_carrier(self, space_id: bytes, carrier: bytes) -> bytes:
        """Stop a carrier carrying a space, then rotate the keys so that it opens no gossip
        sealed after it; returns the carrier record's id."""
        view = self.view(space_id)
        view.require_member()
        dropped = self._sign_and_append(space_id, drop_carrier(view.state, self.me, carrier)).id
        self._rotate_for_carriers(space_id)
        return dropped

    def _rotate_for_carriers(self, space_id: bytes) -> None:
        """Rotate after naming or dropping a carrier; if this member cannot (it holds no key
        yet), the next member who writes does (``needs_rekey``)."""
        try:
            self._rotate_while_needed(space_id)
        except SpaceError as exc:
            log.warning("the keys of space %s were not rotated for its carriers: %s",
                        space_id.hex()[:12], exc)

    def rotate(self, space_id: bytes) -> list[bytes]:
        """Rotate the keys now if the membership changed since the last rotation.

        Returns:
            The ids of the rotations made (none if the keys are current).
        """
        self.view(space_id).require_member()
        return [r.id for r in self._rotate_while_needed(space_id)]

    # -- writing: posts -----------------------------------------------------------------------

    def checkin(self, space_id: bytes, *, text: str, energy: int = 3,
                compass: Mapping[str, int] | None = None, ask: str | None = None) -> bytes:
        """Check in: how I am arriving, energy 1-5, optional compass scores and an ask."""
        unknown = sorted(set(compass or {}) - {scale.key for scale in COMPASS_SCALES})
        if unknown:
            raise InputError(f"{unknown[0]!r} is not a compass scale; the scales are "
                             f"{', '.join(s.key for s in COMPASS_SCALES)}.")
        post = make_post(CheckIn, text=text, energy=energy, compass=dict(compass or {}),
                         ask=ask if ask is None or ask.strip() else None)
        return self._write_post(space_id, post)

    def reply(self, record_id: bytes, *, text: str) -> bytes:
        """Reply to a readable post; returns the reply's id."""
        view = self._post_view(record_id)
        return self._write_post(view.space_id, make_post(Reply, to=record_id, text=text))

    def react(self, record_id: bytes, *, emoji: str) -> bytes:
        """React to a readable post ("heard you", an emoji); returns the reaction's id."""
        view = self._post_view(record_id)
        return self._write_post(view.space_id, make_post(Reaction, to=record_id, text=emoji))

    def post(self, space_id: bytes, post: Post) -> bytes:
        """Post anything (ask, offer, followup, gathering, profile, crew card, ...)."""
        return self._write_post(space_id, post)

    def make_post(self, kind: PostKind | str, **fields: object) -> Post:
        """Build a post of ``kind`` from field values a person gave (text is normalised).

        Raises:
            InputError: if the kind is unknown or a field is missing or out of range.
        """
        return make_post_of_kind(kind, **fields)

    # -- records in and out -------------------------------------------------------------------

    def ingest(self, raws: Iterable[bytes], *, sender: str) -> IngestReport:
        """Verify and store records from a peer or a file; then do the housekeeping.

        Every record is checked by the replica (signature, chain); space rules are applied
        when the space is read. Afterwards, in each space that gained records, this member
        rotates the keys if a joiner is waiting for them from it, and posts its profile if it
        just received its first key; a linked device posts its certificate in a space its
        member joined after linking it (:meth:`adopt_where_let_in`).
        """
        report = ingest_records(self.replica, list(raws), sender=sender, now_ms=self.now())
        if self._on_records is not None and report.accepted:
            found = [self.replica.get(rid) for rid in report.accepted]
            self._on_records([r for r in found if r is not None])
        refused: list[RejectedEntry] = []
        rotated: list[bytes] = []
        accepted = set(report.accepted)
        for sid in report.spaces:
            self.adopt_where_let_in(sid)  # a linked device follows a space its member joined
            self.keep_revoked_out(sid)  # ...but not one revoked elsewhere
            view = self.view(sid)
            refused += [r for r in view.refusals() if r.record_id in accepted]
            if view.should_rotate() and self._rotate_while_needed(sid):
                rotated.append(sid)
            view = self.view(sid)
            if (view.is_member and writable_epoch(view.state, self.me) is not None
                    and not view.has_profile(view.my_member)):
                self._write_post(sid, Profile(self.identity.name))
            view = self.view(sid)
            if view.is_member and view.meta is not None \
                    and writable_epoch(view.state, self.me) is not None and any(
                        e.proposer == view.my_member and e.status == "passed"
                        and e.change is not None
                        and not e.carried_out for e in self.proposals(sid)):
                self._carry_out_passed(sid)  # a proposer makes the change they proposed
        return IngestReport(report.accepted, report.pending, report.duplicates,
                            report.rejected, tuple(refused), report.spaces, tuple(rotated))

    def export_file(self, space_ids: Iterable[bytes], path: str | os.PathLike[str]
                    ) -> ExportReport:
        """Write the records of some spaces to a file (atomically) for :meth:`import_file`."""
        chosen = list(dict.fromkeys(space_ids))
        raws = [raw for sid in chosen for raw in self.export(sid)]
        count = write_records(Path(path), raws)
        return ExportReport(str(path), count, tuple(chosen))

    def import_file(self, path: str | os.PathLike[str]) -> IngestReport:
        """Import a file made by :meth:`export_file`: :meth:`ingest` every record in it."""
        file = Path(path)
        return self.ingest(read_records(file), sender=f"file:{file.name}")

    # -- plumbing -----------------------------------------------------------------------------

    def _proven(self, congregation: bytes, card: CrewCard) -> CrewCard:
        """``card`` with the proof that it comes from a member of its crew (see
        :mod:`meshcrew.spaces.cards`)."""
        try:
            crew = self.view(card.crew)
        except UnknownName:
            raise SpaceError("Only a member of the crew can post its card.") from None
        if not crew.is_member:
            raise SpaceError("Only a member of the crew can post its card.")
        meta = crew.require_meta()
        genesis = crew.state.records.get(card.crew)
        if meta.parent != congregation or genesis is None or crew.keyring.meta_key is None:
            raise SpaceError(f"{meta.name} does not belong to this congregation, so its card "
                             "cannot be posted here.")
        return prove_card(card, congregation=congregation, author=self.me,
                          meta_key=crew.keyring.meta_key, genesis=genesis.raw)

    def _write_post(self, space_id: bytes, post: Post) -> bytes:
        view = self.view(space_id)
        view.require_member()
        if isinstance(post, CrewCard) and not post.proof:
            post = self._proven(space_id, post)
        assert view.state.kind is not None
        if post.kind not in view.state.kind.post_kinds:
            meta = view.require_meta()
            parent = self.view(meta.parent).meta if meta.parent in self.replica.spaces() else None
            raise SpaceError(not_posted_here(post.kind, view.state.kind, meta.name,
                                             parent.name if parent else None))
        if writable_epoch(view.state, self.me) is None:
            self._rotate_while_needed(space_id)
            view = self.view(space_id)
            if writable_epoch(view.state, self.me) is None and self.revoked_elsewhere(space_id):
                raise SpaceError(
                    "A laptop revoked in another space has certified itself here, so the keys "
                    "are not rotated (they would reach it): wait until its owner's laptop with "
                    "the member key receives it, which revokes it here at once.")
        if post.kind is not PostKind.PROFILE and not view.has_profile(view.my_member):
            self._sign_and_append(space_id, seal_post(view.state, self.identity.signing_key,
                                                      Profile(self.identity.name), self._rng))
            view = self.view(space_id)
        made = seal_post(view.state, self.identity.signing_key, post, self._rng)
        return self._sign_and_append(space_id, made).id

    def _rotate_while_needed(self, space_id: bytes) -> list[Record]:
        if self.revoked_elsewhere(space_id):  # the keys would reach a lost laptop
            log.warning("not rotating the keys of space %s: a device revoked elsewhere is "
                        "current there until its member key revokes it", space_id.hex()[:12])
            return []
        made = []
        for _ in range(MAX_ROTATIONS):
            view = self.view(space_id)
            if not view.state.needs_rekey and writable_epoch(view.state, self.me) is not None:
                break
            made.append(self._sign_and_append(space_id, rotate_keys(
                view.state, self.identity.signing_key, self._rng, view.keyring,
                now_ms=self._next_ts(space_id), settings=view.settings_snapshot())))
        return made

    def _next_ts(self, space_id: bytes | None) -> int:
        """Now, or the time of this member's previous record there if the clock went back."""
        head = self.replica.frontier(space_id).get(self.me) if space_id else None
        previous = self.replica.get(head.id) if head is not None else None
        return max(self.now(), previous.ts if previous is not None else 0)

    def _sign_and_append(self, space_id: bytes | None, made: Draft) -> Record:
        head = self.replica.frontier(space_id).get(self.me) if space_id else None
        record = sign_record(self.identity.signing_key, kind=made.kind,
                             space=space_id or NEW_SPACE,
                             seq=head.seq + 1 if head else 1, prev=head.id if head else None,
                             ts=self._next_ts(space_id), body=made.body)
        report = self.replica.append([record.raw], sender="local", now_ms=self.now())
        if record.id not in report.accepted:
            why = report.rejected[0].reason.sentence if report.rejected else "no reason given"
            raise ReplicaError(f"The replica refused this member's new record: {why}")
        if self._on_records is not None:
            self._on_records([record])
        status = self.view(record.space_id).state.status(record.id)
        if status is not None and not status.accepted and status.reason is not None:
            raise SpaceError(f"The space refused the new record: {status.reason.sentence}")
        return record
