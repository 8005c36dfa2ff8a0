"""One space as one member sees it, for one set of records: what every read of the service uses.

A :class:`SpaceView` folds the space's accepted records, unlocks this member's keys, and then
computes on first use (and keeps) the decrypted posts, names and entries (the entries the
reads ask for are built in :mod:`meshcrew.service.space_entries`). It never changes; the member
service builds a new one when the space's frontier changes, so a view can be shared by every read
until then. Nothing here touches the replica.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from meshcrew.errors import SpaceError
from meshcrew.identity import Identity, fingerprint
from meshcrew.records import Head, Record
from meshcrew.service.entries import (
    PostEntry,
)
from meshcrew.service.memo import memo
from meshcrew.service.space_entries import SpaceEntries
from meshcrew.spaces import (
    Keyring,
    OpenedPost,
    OpenedSpace,
    PostKind,
    RecordKind,
    SpaceMeta,
    SpaceState,
    fold,
    open_meta,
    open_more,
    open_posts,
    unlock,
)
from meshcrew.spaces import views as domain_views
from meshcrew.spaces.bodies import (
    ConsentBody,
    DeviceBody,
    GenesisBody,
    InviteBody,
    JoinBody,
    KeysBody,
    RemoveBody,
    RevokeBody,
    UnlinkBody,
    parse_body,
)
from meshcrew.spaces.editing import SettingsHistory, settings_history
from meshcrew.spaces.extend import extend
from meshcrew.spaces.posts import Post
from meshcrew.spaces.sealing import settings_start
from meshcrew.spaces.settings import SettingsSnapshot
from meshcrew.spaces.state import ChangeKind

_NOT_A_MEMBER = {"left": "You have left this space; to come back, ask a member for a new "
                         "invite (meshcrew join CODE).",
                 "removed": "You were removed from this space by consent.",
                 "revoked": "This device was revoked by its member; it can read nothing new."}


def _chronological(entry: PostEntry) -> tuple[int, bytes]:
    return entry.ts, entry.id


def post_fields(post: Post) -> dict[str, Any]:
    """The fields of a post as a dict (its kind is not a field; mappings become dicts).

    Fields that are proof rather than content (``repr=False``: a crew card's genesis record
    and signature) are left out.
    """
    names = _FIELD_NAMES.get(type(post))
    if names is None:
        names = _FIELD_NAMES[type(post)] = tuple(f.name for f in dataclasses.fields(post)
                                                 if f.repr)
    values = {name: getattr(post, name) for name in names}
    return {name: dict(v) if isinstance(v, Mapping) else v for name, v in values.items()}


T = TypeVar("T")

_TAKEN = ("opened", "_member_views", "post_entries")
"""What an extended view takes from the view before it."""

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Per post class, its field names (asked once per post when a log is built)."""


class SpaceView(SpaceEntries):
    """One space as one member sees it, for one set of its accepted records.

    Made by :meth:`folded` (from scratch) or :meth:`extended` (from the view before it).

    Args:
        space_id: the space.
        frontier: the replica's frontier of the space for those records (the cache key).
        me: this member's public key.
        state: the space's state.
        keyring: the keys this member holds for it.
        meta: its settings as its genesis made them, if this member can read them (the
            current ones are :attr:`meta`).
        previous: the view this one extends (its computed posts and entries are reused).
    """

    def __init__(self, space_id: bytes, frontier: Mapping[bytes, Head], me: bytes,
                 state: SpaceState, keyring: Keyring, meta: SpaceMeta | None,
                 previous: SpaceView | None = None,
                 arrived: frozenset[bytes] | None = None) -> None:
        self.space_id = space_id
        self.frontier = dict(frontier)
        self.me = me
        self.state = state
        self.keyring = keyring
        self.genesis_meta = meta
        self._previous = previous
        """The view this one extends, while it has work this one can take over."""
        self._arrived = arrived
        """The ids of the records this view has and ``previous`` had not (None: unknown)."""

    @classmethod
    def folded(cls, space_id: bytes, records: Iterable[Record], frontier: Mapping[bytes, Head],
               me: Identity) -> SpaceView:
        """The view of a space's records, folded from scratch."""
        state = fold(space_id, records)
        keyring = unlock(state, me.signing_key)
        return cls(space_id, frontier, me.public_key, state, keyring, open_meta(state, keyring))

    def extended(self, records: list[Record]) -> SpaceView | None:
        """This view once ``records`` (new to it) have arrived, or None if that takes a new fold.

        The new view reuses this one's work: the fold is extended (see
        :func:`meshcrew.spaces.extend.extend`), only the new posts are decrypted, and the
        entries are kept unless a new profile renames someone. Posts change no epoch, so the
        keys and the settings stay as they were.
        """
        state = extend(self.state, records)
        if state is None:
            return None
        frontier = dict(self.frontier)
        for record in records:
            head = frontier.get(record.author)
            if head is None or record.seq > head.seq:
                frontier[record.author] = Head(record.seq, record.id)
        self._previous = None  # a chain of one: older views are let go
        view = SpaceView(self.space_id, frontier, self.me, state, self.keyring,
                         self.genesis_meta, previous=self,
                         arrived=frozenset(record.id for record in records))
        # The new view takes over now what this one worked out (only the new posts are
        # decrypted) and lets it go. Taken later, at a read, a view between that nobody read
        # would break the chain: a node whose gossip judge reads only the state opened every
        # post again at each of its settings reads (posts, once a minute), and two
        # generations of the space's mappings stayed in memory between arrivals.
        for name in _TAKEN:
            if name in self.__dict__:
                getattr(view, name)
        view._previous = None
        return view

    def _reusable(self, name: str) -> Any:
        """The previous view's computed ``name`` if it had one, else None."""
        previous = self._previous
        return None if previous is None else previous.__dict__.get(name)

    def _took(self, name: str, value: T) -> T:
        """Return ``value``, just computed for ``name``; once this view holds everything it
        could take from the previous one (:data:`_TAKEN`), let that one go."""
        if self._previous is not None and all(taken == name or taken in self.__dict__
                                              for taken in _TAKEN):
            self._previous = None
        return value

    @memo
    def _new_posts(self) -> list[OpenedPost]:
        """The readable posts this view has and the previous one had not (all if no previous)."""
        previous = self._previous
        if previous is None:
            return list(self.opened.posts)
        if self._arrived is not None:  # not a pass over every post
            found = (self.opened.post(rid) for rid in self._arrived)
            return [p for p in found if p is not None]
        return [p for p in self.opened.posts if p.record_id not in previous.state.records]

    @memo
    def _renames(self) -> bool:
        """Whether names may differ from the previous view's (a new profile post)."""
        return any(p.kind is PostKind.PROFILE for p in self._new_posts)

    # -- settings -----------------------------------------------------------------------------

    @memo
    def settings(self) -> SettingsHistory | None:
        """The settings and their history of changes (None while this member holds no key)."""
        if self.genesis_meta is None:
            return None
        return settings_history(self.opened, self.genesis_meta,
                                start=settings_start(self.state, self.keyring))

    def settings_snapshot(self) -> SettingsSnapshot | None:
        """The settings now, as a key rotation by this member carries them for joiners."""
        history = self.settings
        if history is None:
            return None
        last = history.applied[-1].post if history.applied else None
        return SettingsSnapshot(history.current, last.ts if last else 0,
                                last.record_id if last else None)

    @property
    def meta(self) -> SpaceMeta | None:
        """The space's settings now, if this member can read them."""
        history = self.settings
        return None if history is None else history.current

    # -- where this member stands -------------------------------------------------------------

    @property
    def my_member(self) -> bytes:
        """The member this node speaks for: its own key, or the member it is a device of (a
        revoked device still names its member; see :meth:`is_member`)."""
        return self.state.member_of(self.me) or self.me

    @property
    def my_status(self) -> str:
        """``active``, ``left``, ``removed`` or ``outsider`` (a revoked device: ``revoked``)."""
        device = self.state.devices.get(self.me)
        if device is not None and device.revoked_by is not None:
            return "revoked"
        member = self.state.members.get(self.my_member)
        return "outsider" if member is None else member.status.value

    @property
    def is_member(self) -> bool:
        """Whether this member is a current member."""
        return self.state.is_member(self.me)

    @property
    def holds_keys(self) -> bool:
        """Whether this member holds any key of the space."""
        return bool(self.keyring.epoch_keys)

    def require_member(self) -> None:
        """Raise SpaceError unless this member is a current member whose join was let in."""
        if not self.is_member:
            raise SpaceError(_NOT_A_MEMBER.get(
                self.my_status, "You are not a member of this space; to join it, ask a member "
                "for an invite (meshcrew join CODE)."))
        if self.my_member in self.state.pending:
            raise SpaceError("Your join has not been let in yet: a member rotates the keys for "
                             "you (usually the inviter, as soon as your join reaches them).")

    def require_meta(self) -> SpaceMeta:
        """The settings, or raise SpaceError if this member holds no key yet."""
        if self.meta is None:
            self.require_member()  # someone not in the space: why, and how to join
            raise SpaceError("You hold no key of this space yet: a member (usually whoever "
                             "invited you) lets you in, and their node sends you the keys, once "
                             "your join reaches it.")
        return self.meta

    # -- posts and names ----------------------------------------------------------------------

    @memo
    def opened(self) -> OpenedSpace:
        """The posts this member can read."""
        before = self._reusable("opened")
        if before is not None:
            return open_more(before, self.state, self.keyring)
        return open_posts(self.state, self.keyring)

    @memo
    def posts_by_id(self) -> dict[bytes, OpenedPost]:
        """Readable posts by record id."""
        return {post.record_id: post for post in self.opened.posts}

    @memo
    def _member_views(self) -> list[domain_views.MemberView]:
        before = self._reusable("_member_views")
        if before is not None and not self._renames:
            return self._took("_member_views", before)
        return self._took("_member_views", domain_views.member_views(self.opened))

    @memo
    def names(self) -> dict[bytes, str]:
        """Every member's display name here (latest profile, else fingerprint)."""
        return {row.key: row.name for row in self._member_views}

    def name_of(self, key: bytes) -> str:
        """A member's display name here, or the fingerprint of any other key."""
        return self.names.get(key) or fingerprint(key)

    def has_profile(self, key: bytes) -> bool:
        """Whether ``key`` has a readable profile post in the space."""
        return any(p.author == key for p in self.opened.of_kind(PostKind.PROFILE))

    def entry_of(self, post: OpenedPost) -> PostEntry:
        """The log entry of a readable post."""
        return PostEntry(post.record_id, self.space_id, post.kind.value, post.author,
                         self.name_of(post.author), post.seq, post.ts, post_fields(post.post),
                         post.signer if post.signer != post.author else b"")

    @memo
    def post_entries(self) -> tuple[PostEntry, ...]:
        """The readable posts, oldest first (signed time, then id)."""
        before: tuple[PostEntry, ...] | None = self._reusable("post_entries")
        if before is not None:
            merged = list(before) if not self._renames else [
                entry if entry.author_name == self.name_of(entry.author)
                else dataclasses.replace(entry, author_name=self.name_of(entry.author))
                for entry in before]
            for post in self._new_posts:
                entry = self.entry_of(post)
                bisect.insort(merged, entry, key=_chronological)
            return self._took("post_entries", tuple(merged))
        return self._took("post_entries", tuple(sorted(map(self.entry_of, self.opened.posts),
                                                       key=_chronological)))

    @memo
    def all_entries(self) -> tuple[PostEntry, ...]:
        """Posts, locked posts and membership records, oldest first."""
        entries = list(self.post_entries)
        for rid in self.state.order:
            record = self.state.records[rid]
            if record.kind == RecordKind.SEALED:
                if rid in self.opened.locked:
                    entries.append(self._event(record, "locked", {}))
                continue
            entries.append(self._membership_entry(record))
        return tuple(sorted(entries, key=_chronological))

    def _event(self, record: Record, kind: str, fields: dict[str, Any]) -> PostEntry:
        author = self.state.member_of(record.author) or record.author  # a device: its member
        return PostEntry(record.id, self.space_id, kind, author,
                         self.name_of(author), record.seq, record.ts, fields,
                         record.author if record.author != author else b"")

    def _membership_entry(self, record: Record) -> PostEntry:
        body = parse_body(record.kind, record.body)
        fields: dict[str, Any] = {}
        match body:
            case GenesisBody():
                fields = {"space_kind": body.space_kind.value, "history": body.history}
            case InviteBody():
                fields = {"uses": body.uses, "expires_ms": body.expires_ms}
            case JoinBody():
                inviter = self.state.records[body.invite].author
                fields = {"invite": body.invite, "invited_by": inviter,
                          "invited_by_name": self.name_of(inviter)}
            case RemoveBody():
                removal = self.state.removals.get(record.id)
                fields = {"member": body.member, "member_name": self.name_of(body.member),
                          "effective": removal is not None and removal.effective}
            case ConsentBody():
                target = self.state.removals[body.proposal].member
                fields = {"proposal": body.proposal, "member": target,
                          "member_name": self.name_of(target)}
            case KeysBody():
                fields = {"epoch": body.number, "recipients": len(body.shares)}
            case RevokeBody():
                fields = {"invite": body.invite}
            case DeviceBody():
                fields = {"device": record.author, "device_fingerprint": fingerprint(record.author)}
            case UnlinkBody():
                fields = {"device": body.device, "device_fingerprint": fingerprint(body.device)}
            case None:
                return self._event(record, "unknown", {"record_kind": record.kind})
            case _:
                fields = {}
        return self._event(record, record.kind, fields)

    # -- housekeeping -------------------------------------------------------------------------

    def should_rotate(self) -> bool:
        """Whether this member should rotate the keys now to let a joiner read.

        True when someone joined since the last rotation that included them, and this member
        made their invite; or the one who made it is no longer a member and this member has
        the lowest key among the members holding the newest epoch (so that one member, not
        everyone, answers an orphaned join); or this member linked or revoked one of their
        devices since the last rotation (any of their devices holding keys rotates, so the
        new device reads, or the revoked one reads nothing new). After a departure alone
        nobody rotates here: whoever writes next rotates first (see :meth:`Member.checkin`).
        """
        state = self.state
        if not (state.needs_rekey and self.is_member and self.holds_keys):
            return False
        newest_epoch = max(e.version for e in state.epochs.values())
        if any(change.member == self.my_member and i >= newest_epoch
               and change.change in (ChangeKind.LINKED, ChangeKind.UNLINKED)
               for i, change in enumerate(state.changes)):
            return True
        # The joiners no rotation has let in yet (one sealed to a rejoiner before they left
        # lets no one in: fold rule 7).
        unanswered = [state.members[key] for key in state.pending]
        if any(m.invited_by == self.my_member for m in unanswered):
            return True
        if not any(m.invited_by not in state.active for m in unanswered):
            return False
        newest = min(state.epochs.values(), key=lambda e: (-e.number, e.id))
        holders = sorted(k for k in state.active if k in newest.shares)
        return bool(holders) and holders[0] == self.me
