"""What a node needs of each space without holding its posts: :class:`LeanSpaces`.

A member's node judges gossip, serves sync and seals in transit by the membership of each space,
and runs the retention pass by its settings; none of that reads a post's text. A
:class:`~meshcrew.service.views.SpaceView` holds every record and every opened post (over 100 MB
for a space of 100,000 posts), so the node asks this instead:

- :meth:`LeanSpaces.state`: the space's state for every record that is not a post
  (:func:`~meshcrew.spaces.membership.fold_membership`), kept until a record that is not a post
  arrives (posts change no membership);
- :meth:`LeanSpaces.keyring`: the keys this member holds, from that state;
- :meth:`LeanSpaces.keeps_everything`: whether the space's settings keep every post forever and
  no member took theirs away when leaving, so that a retention pass has nothing to delete. The
  settings are the genesis's (or the rotation's a late joiner starts from) unless a settings
  post changed them; which posts are settings only decryption tells, so each post is opened
  once, one at a time, and only whether one was a settings post is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshcrew.crypto import decrypt
from meshcrew.errors import DecryptError, UnknownName
from meshcrew.identity import Identity
from meshcrew.records import Head, Record, RecordError
from meshcrew.spaces import Keyring, PostKind, RecordKind, SpaceState, open_meta, unlock
from meshcrew.spaces.bodies import SealedBody, parse_body
from meshcrew.spaces.membership import fold_membership
from meshcrew.spaces.posts import decode_post
from meshcrew.spaces.retention import withdrawn
from meshcrew.spaces.sealing import post_ad, settings_start
from meshcrew.spaces.settings import KEEP_FOREVER
from meshcrew.store import Replica

FOLLOW_UP_TO = 4_096
"""Most new records read at once; past it (a catch-up) they are taken one at a time from the
replica's stream of the space, so that a catch-up is neither held in memory nor folded or
decrypted again whole."""


@dataclass(frozen=True, slots=True)
class _Lean:
    """One space's membership state, the keys it gives, and the frontier it was checked at."""

    state: SpaceState
    keyring: Keyring
    frontier: Mapping[bytes, Head]


@dataclass(frozen=True, slots=True)
class _Scan:
    """Whether a settings post was found among the posts of ``frontier`` with ``keys``."""

    frontier: Mapping[bytes, Head]
    keys: frozenset[bytes]
    found: bool


def _regressed(before: Mapping[bytes, Head], now: Mapping[bytes, Head]) -> bool:
    """Whether a chain lost records since ``before`` (a fork came to light)."""
    return any(now.get(author, Head(0, b"")).seq < head.seq for author, head in before.items())


class LeanSpaces:
    """Each space's membership and settings as a node needs them, over one replica.

    Single-threaded, as the member service is.
    """

    def __init__(self, replica: Replica, identity: Identity) -> None:
        self._replica = replica
        self._identity = identity
        self._spaces: dict[bytes, _Lean] = {}
        self._scans: dict[bytes, _Scan] = {}

    def state(self, space_id: bytes) -> SpaceState:
        """The space's state for everything but its posts (see the module).

        Raises:
            UnknownName: if the replica holds no accepted record of the space.
        """
        return self._lean(space_id).state

    def keyring(self, space_id: bytes) -> Keyring:
        """The keys this member holds for the space (as its view's keyring)."""
        return self._lean(space_id).keyring

    def _lean(self, space_id: bytes) -> _Lean:
        frontier = self._replica.frontier(space_id)
        if not frontier:
            self._spaces.pop(space_id, None)
            raise UnknownName(f"This replica holds no space with id {space_id.hex()}.")
        kept = self._spaces.get(space_id)
        if kept is not None and kept.frontier != frontier:
            only_posts = not _regressed(kept.frontier, frontier) and \
                self._replica.kinds_after(space_id, kept.frontier) <= {RecordKind.SEALED}
            kept = _Lean(kept.state, kept.keyring, frontier) if only_posts else None
        if kept is None:
            state = fold_membership(space_id, self._replica.each_space_record(space_id))
            kept = _Lean(state, unlock(state, self._identity.signing_key), frontier)
        self._spaces[space_id] = kept
        return kept

    def _arrived(self, space_id: bytes, before: Mapping[bytes, Head],
                 now: Mapping[bytes, Head]) -> Iterable[Record] | None:
        """The records of ``now`` that ``before`` lacks (None if a chain lost records): a
        few at once, or many (a catch-up) one at a time from the replica's stream."""
        if _regressed(before, now):
            return None
        arrived = sum(head.seq - before.get(author, Head(0, b"")).seq
                      for author, head in now.items())
        if arrived <= FOLLOW_UP_TO:
            return self._replica.records_after(space_id, before, limit=FOLLOW_UP_TO + 1)
        return self._replica.each_record_after(space_id, before)

    def keeps_everything(self, space_id: bytes) -> bool:
        """Whether no post of the space can expire now: its settings keep check-ins and other
        posts forever, no settings post could have changed that, and no member left taking
        their posts with them. False also while this member cannot read the settings.

        Raises:
            UnknownName: if the replica holds no accepted record of the space.
        """
        lean = self._lean(space_id)
        state, keyring = lean.state, lean.keyring
        genesis = open_meta(state, keyring)
        if genesis is None:
            return False
        start = settings_start(state, keyring)
        meta = start.meta if start is not None else genesis
        if meta.keep_checkins != KEEP_FOREVER or meta.keep_posts != KEEP_FOREVER \
                or withdrawn(state):
            return False
        return not self._settings_posted(space_id, lean)

    def _settings_posted(self, space_id: bytes, lean: _Lean) -> bool:
        """Whether any post this member can open in the space is a settings post."""
        keys = frozenset(lean.keyring.epoch_keys)
        scan = self._scans.get(space_id)
        found: bool | None = None
        if scan is not None and scan.keys == keys:
            if scan.frontier == lean.frontier or (scan.found and \
                    not _regressed(scan.frontier, lean.frontier)):
                found = scan.found
            else:
                new = self._arrived(space_id, scan.frontier, lean.frontier)
                if new is not None:
                    found = self._any_settings(space_id, new, lean.keyring)
        if found is None:
            found = self._any_settings(space_id, self._replica.each_space_record(space_id),
                                       lean.keyring)
        self._scans[space_id] = _Scan(lean.frontier, keys, found)
        return found

    @staticmethod
    def _any_settings(space_id: bytes, records: Iterable[Record], keyring: Keyring) -> bool:
        """Whether any of ``records`` opens to a settings post (read to the end: a replica's
        stream must be)."""
        found = False
        for record in records:
            if not found and record.kind == RecordKind.SEALED and not record.expired:
                found = _is_settings(space_id, record, keyring)
        return found


def _is_settings(space_id: bytes, record: Record, keyring: Keyring) -> bool:
    """Whether a post opens, with ``keyring``, to a settings post (as the views open it:
    :func:`meshcrew.spaces.sealing.open_posts`; one it opens but would refuse counts too, so
    the retention pass then asks the whole view)."""
    try:
        body = parse_body(record.kind, record.body)
    except RecordError:
        return False
    assert isinstance(body, SealedBody)
    key = keyring.epoch_keys.get(body.epoch)
    if key is None:
        return False
    try:
        post = decode_post(decrypt(key, body.blob, post_ad(space_id, record.author, body.epoch)))
    except (DecryptError, RecordError):
        return False
    return post.kind is PostKind.SETTINGS
