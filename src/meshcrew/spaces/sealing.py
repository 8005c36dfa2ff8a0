"""Keys and posts: what a member can unlock, and how posts are sealed and opened.

Key material of a space:

* the **epoch keys**: epoch 0's is sealed to the founder in the genesis; each ``keys`` record
  seals a new one to every recipient. If the space allows history, each ``keys`` record also
  carries a *history link*: the keys of the epochs one number below it that its author holds,
  encrypted under the new key, so a joiner can walk back to the start. A key learnt through a
  link is kept only if it opens that epoch's meta-key blob, so a bad link cannot plant a key.
* the **meta key**: one key for the life of the space, made by the founder; the genesis and
  every ``keys`` record carry it encrypted under their epoch key, so every member (with or
  without history) can read the space's settings.

A post is encrypted with XChaCha20-Poly1305 under its epoch key, with associated data
``POST_AD || space id || author || epoch id``: a ciphertext moved to another space, author or
epoch does not open.

Opening is the members' second check: a record the fold accepted may still hold a ciphertext
that does not open (``unreadable``) or a post that breaks a limit (``bad_body``). Every member
who holds the key reaches the same verdict. Posts of epochs this member holds no key for (before
they joined, in a space without history) are neither: they are listed as locked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgpack
from nacl.signing import SigningKey

from meshcrew.crypto import KEY_BYTES, Rng, decrypt, encrypt, open_sealed
from meshcrew.errors import DecryptError, SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import Record, RecordError
from meshcrew.spaces.bodies import Draft, GenesisBody, SealedBody, draft, parse_body
from meshcrew.spaces.kinds import PostKind, RecordKind
from meshcrew.spaces.posts import Post, decode_post, encode_post
from meshcrew.spaces.settings import SettingsSnapshot, SpaceMeta
from meshcrew.spaces.state import Epoch, Outcome, SpaceState, Status

POST_AD = b"meshcrew/post/v1\x00"
META_AD = b"meshcrew/meta/v1\x00"
META_KEY_AD = b"meshcrew/meta-key/v1\x00"
HISTORY_AD = b"meshcrew/history/v1\x00"
SETTINGS_AD = b"meshcrew/settings/v1\x00"


def post_ad(space_id: bytes, author: bytes, epoch_id: bytes) -> bytes:
    """The associated data of a post."""
    return POST_AD + space_id + author + epoch_id


def epoch_ad(prefix: bytes, author: bytes, number: int) -> bytes:
    """The associated data of an epoch record's meta-key blob or history link."""
    return prefix + author + number.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys one member holds for one space (never log or store it unencrypted)."""

    epoch_keys: Mapping[bytes, bytes] = field(repr=False)
    """Epoch id → epoch key."""
    meta_key: bytes | None = field(repr=False)

    def __repr__(self) -> str:
        return f"Keyring({len(self.epoch_keys)} epoch keys)"


def _open_meta_key(epoch: Epoch, key: bytes) -> bytes | None:
    try:
        meta_key = decrypt(key, epoch.meta_key, epoch_ad(META_KEY_AD, epoch.author, epoch.number))
    except DecryptError:
        return None
    return meta_key if len(meta_key) == KEY_BYTES else None


def unlock(state: SpaceState, member: SigningKey) -> Keyring:
    """Every key ``member`` can recover from the space's accepted epochs."""
    me = bytes(member.verify_key)
    keys: dict[bytes, bytes] = {}
    for epoch in state.epochs.values():
        if me in epoch.shares:
            try:
                key = open_sealed(member, epoch.shares[me])
            except DecryptError:
                continue
            if len(key) == KEY_BYTES:
                keys[epoch.id] = key
    pending = sorted(keys)
    while pending:
        epoch = state.epochs[pending.pop()]
        if epoch.history is None:
            continue
        try:
            linked = msgpack.unpackb(decrypt(keys[epoch.id], epoch.history,
                                             epoch_ad(HISTORY_AD, epoch.author, epoch.number)),
                                     raw=False, strict_map_key=True)
        except (DecryptError, ValueError, TypeError, msgpack.UnpackException):
            continue
        if not isinstance(linked, dict):
            continue
        for old_id, old_key in sorted(linked.items()):
            old = state.epochs.get(old_id) if isinstance(old_id, bytes) else None
            if (old is not None and old_id not in keys and isinstance(old_key, bytes)
                    and _open_meta_key(old, old_key) is not None):
                keys[old_id] = old_key
                pending.append(old_id)
    meta_key = next((mk for eid in sorted(keys)
                     if (mk := _open_meta_key(state.epochs[eid], keys[eid])) is not None), None)
    return Keyring(keys, meta_key)


def open_meta(state: SpaceState, keyring: Keyring) -> SpaceMeta | None:
    """The space's settings (name, purpose, rhythm, parent), or None if locked or damaged."""
    genesis = state.records.get(state.space_id)
    if keyring.meta_key is None or genesis is None or state.founder is None:
        return None
    try:
        body = parse_body(genesis.kind, genesis.body)
        assert isinstance(body, GenesisBody)
        wire = msgpack.unpackb(decrypt(keyring.meta_key, body.meta, META_AD + state.founder),
                               raw=False, strict_map_key=True)
        return SpaceMeta.from_wire(wire)
    except (DecryptError, RecordError, ValueError, TypeError, msgpack.UnpackException):
        return None


def seal_settings(key: bytes, snapshot: SettingsSnapshot, author: bytes, number: int,
                  rng: Rng) -> bytes:
    """The settings snapshot of a rotation by ``author`` opening epoch ``number``."""
    return encrypt(key, msgpack.packb(snapshot.to_wire(), use_bin_type=True),
                   epoch_ad(SETTINGS_AD, author, number), rng)


def settings_start(state: SpaceState, keyring: Keyring) -> SettingsSnapshot | None:
    """Where this member's view of the settings starts, if not at the genesis.

    In a space without history, a member who joined later holds no key of the epochs before
    their first: they start from the settings a rotation they can read carries (of those, the
    one that includes the latest change). Everyone else starts from the genesis (None).
    """
    if state.history or not keyring.epoch_keys or state.space_id in keyring.epoch_keys:
        return None
    found = []
    for eid in sorted(keyring.epoch_keys):
        epoch = state.epochs[eid]
        if epoch.settings is None:
            continue
        try:
            wire = msgpack.unpackb(decrypt(keyring.epoch_keys[eid], epoch.settings,
                                           epoch_ad(SETTINGS_AD, epoch.author, epoch.number)),
                                   raw=False, strict_map_key=True)
            found.append(SettingsSnapshot.from_wire(wire))
        except (DecryptError, RecordError, ValueError, TypeError, msgpack.UnpackException):
            continue
    return max(found, key=lambda s: (s.ts, s.last or b""), default=None)


def writable_epoch(state: SpaceState, author: bytes) -> Epoch | None:
    """The epoch ``author`` should write under now, or None if keys must be rotated first.

    That is the current epoch, unless the author already wrote under a newer one.
    """
    epoch = state.current_epoch
    if epoch is None or author not in epoch.shares:
        return None
    return epoch if epoch.number >= state.floors.get(author, 0) else None


def seal_post(state: SpaceState, author: SigningKey, post: Post, rng: Rng) -> Draft:
    """Encrypt ``post`` for the current members: the draft of a ``sealed`` record.

    Raises:
        SpaceError: if the author is not a member, the post does not belong in this kind of
            space, or the keys must be rotated first (see
            :func:`meshcrew.spaces.actions.rotate_keys`).
    """
    me = bytes(author.verify_key)
    if not state.is_member(me) or state.kind is None:
        raise SpaceError("You are not a member of this space.")
    if post.kind not in state.kind.post_kinds:
        raise SpaceError(f"A {post.kind.value.replace('_', ' ')} cannot be posted in a "
                         f"{state.kind.value}.")
    epoch = writable_epoch(state, me)
    if epoch is None:
        raise SpaceError("The membership changed since the last key rotation; rotate the keys "
                         "before writing.")
    key = open_sealed(author, epoch.shares[me])
    blob = encrypt(key, encode_post(post), post_ad(state.space_id, me, epoch.id), rng)
    return draft(SealedBody(epoch.id, blob))


@dataclass(frozen=True, slots=True)
class OpenedPost:
    """A post a member could read, with the facts of its record."""

    record_id: bytes
    author: bytes
    """The member who wrote it (for a post a device signed, the device's member)."""
    seq: int
    """Its place in the chain of the key that signed it (:attr:`device`)."""
    ts: int
    epoch_id: bytes
    post: Post
    device: bytes = b""
    """The key that signed it: the member key itself, or one of the member's devices."""

    @property
    def signer(self) -> bytes:
        """The key that signed the record (its chain is this key's)."""
        return self.device or self.author

    @property
    def kind(self) -> PostKind:
        """The post's kind."""
        return self.post.kind


def newer(post: OpenedPost, than: OpenedPost) -> bool:
    """Whether ``post`` is a later word of its member than ``than``: the higher seq in one
    device's chain; between two devices of a member (whose seqs do not compare), the later
    signed time, then seq, then id."""
    if post.signer == than.signer:
        return post.seq > than.seq
    return (post.ts, post.seq, post.record_id) > (than.ts, than.seq, than.record_id)


@dataclass(frozen=True, slots=True)
class OpenedSpace:
    """What one member can read of a space: a pure function of the state and their keys."""

    state: SpaceState = field(repr=False)
    posts: tuple[OpenedPost, ...]
    """The readable, valid posts, in canonical order."""
    refused: Mapping[bytes, Status]
    """Accepted ``sealed`` records whose content is invalid (``unreadable``, ``bad_body``)."""
    locked: frozenset[bytes]
    """Accepted ``sealed`` records of epochs this member holds no key for."""
    expired: frozenset[bytes] = frozenset()
    """Accepted ``sealed`` records held as husks: their post expired and was deleted (see
    :mod:`meshcrew.spaces.retention`)."""
    _by_id: Mapping[bytes, OpenedPost] = field(init=False, repr=False, compare=False)
    _by_kind: Mapping[PostKind, tuple[OpenedPost, ...]] = field(init=False, repr=False,
                                                                compare=False)

    def __post_init__(self) -> None:
        # Indexes for the views, which ask by id and by kind many times per screen.
        by_kind: dict[PostKind, list[OpenedPost]] = {}
        for post in self.posts:
            by_kind.setdefault(post.kind, []).append(post)
        object.__setattr__(self, "_by_id", {p.record_id: p for p in self.posts})
        object.__setattr__(self, "_by_kind", {k: tuple(v) for k, v in by_kind.items()})

    @classmethod
    def _with_tail(cls, state: SpaceState, posts: tuple[OpenedPost, ...],
                   refused: Mapping[bytes, Status], locked: frozenset[bytes],
                   expired: frozenset[bytes], before: OpenedSpace,
                   dropped: tuple[OpenedPost, ...], added: list[OpenedPost]) -> OpenedSpace:
        """The space ``before`` was with its last posts ``dropped`` and ``added`` after the
        rest; its indexes are ``before``'s, changed by those only (see :func:`open_more`)."""
        made = object.__new__(cls)
        for name, value in (("state", state), ("posts", posts), ("refused", refused),
                            ("locked", locked), ("expired", expired)):
            object.__setattr__(made, name, value)
        by_id = dict(before._by_id)
        for post in dropped:
            del by_id[post.record_id]
        by_id.update((post.record_id, post) for post in added)
        by_kind = dict(before._by_kind)
        for kind in {p.kind for p in dropped} | {p.kind for p in added}:
            kept = by_kind.get(kind, ())
            cut = sum(1 for p in dropped if p.kind is kind)  # they are its last ones
            by_kind[kind] = kept[:len(kept) - cut] + tuple(p for p in added if p.kind is kind)
        object.__setattr__(made, "_by_id", by_id)
        object.__setattr__(made, "_by_kind", by_kind)
        return made

    def post(self, record_id: bytes) -> OpenedPost | None:
        """The opened post with that record id, if any."""
        return self._by_id.get(record_id)

    def of_kind(self, kind: PostKind) -> list[OpenedPost]:
        """The posts of one kind, in canonical order."""
        return list(self._by_kind.get(kind, ()))


def open_posts(state: SpaceState, keyring: Keyring) -> OpenedSpace:
    """Decrypt and check every accepted ``sealed`` record this keyring opens."""
    return _open(state, keyring, state.accepted(RecordKind.SEALED), {})


def open_more(opened: OpenedSpace, state: SpaceState, keyring: Keyring) -> OpenedSpace:
    """``open_posts(state, keyring)``, decrypting only what ``opened`` did not hold.

    For a state that :func:`meshcrew.spaces.extend.extend` made from ``opened.state``: it adds
    posts and leaves the epochs, and so the keyring, as they were.
    """
    tail = _changed_tail(opened.state.order, state.order)
    if tail is not None:
        return _open_tail(opened, state, keyring, tail)
    fresh = [state.records[rid] for rid in state.order
             if rid not in opened.state.records and state.records[rid].kind == RecordKind.SEALED]
    done: dict[bytes, OpenedPost | Status | None] = {
        **opened.refused, **dict.fromkeys(opened.locked), **dict.fromkeys(opened.expired)}
    done.update((post.record_id, post) for post in opened.posts)
    return _open(state, keyring, fresh, done)


TAIL_MAX = 4096
"""Most records from the first new one to the end of the order that :func:`open_more` goes
over alone; past it, it goes over every record."""


def _changed_tail(before: tuple[bytes, ...], after: tuple[bytes, ...]) -> int | None:
    """Where the two canonical orders part, if ``after`` is ``before`` with records put in
    among its last :data:`TAIL_MAX` (what :func:`meshcrew.spaces.extend.extend` does with posts
    that follow their authors' newest records); else None."""
    low, high = max(len(before) - TAIL_MAX, 0), len(before)
    if len(after) < len(before) or after[:low] != before[:low]:
        return None
    while low < high:  # the longest common start, by halves (each comparison at C speed)
        middle = (low + high + 1) // 2
        if after[low:middle] == before[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _open_tail(opened: OpenedSpace, state: SpaceState, keyring: Keyring,
               cut: int) -> OpenedSpace:
    """:func:`open_more` when the orders agree up to ``cut``: the posts before it are kept as
    they are, and only the records from it on are gone over (the new ones decrypted), so a new
    post costs the same in a space of any size."""
    old_tail = opened.state.order[cut:]
    moved = set(old_tail)
    keep = len(opened.posts)
    while keep and opened.posts[keep - 1].record_id in moved:
        keep -= 1
    earlier: dict[bytes, OpenedPost | Status | None] = {
        rid: opened.refused.get(rid) for rid in old_tail if rid not in opened.locked
        and rid not in opened.expired}
    earlier.update((post.record_id, post) for post in opened.posts[keep:])
    allowed = state.kind.post_kinds if state.kind is not None else frozenset()
    posts = list(opened.posts[:keep])
    refused = dict(opened.refused)
    for rid in old_tail:  # put back below in the new order
        refused.pop(rid, None)
    locked, expired = set(opened.locked), set(opened.expired)
    added: list[OpenedPost] = []
    for rid in state.order[cut:]:
        record = state.records[rid]
        if record.kind != RecordKind.SEALED:
            continue
        if rid in earlier:
            result = earlier[rid]
        elif rid in opened.locked or rid in opened.expired:
            continue  # it stays where it was
        else:
            result = _open_one(state, keyring, record, allowed)
            if result is None:
                (expired if record.expired else locked).add(rid)
        if isinstance(result, Status):
            refused[rid] = result
        elif isinstance(result, OpenedPost):
            added.append(result)
    posts += added
    return OpenedSpace._with_tail(state, tuple(posts), refused, frozenset(locked),
                                  frozenset(expired), opened, opened.posts[keep:], added)


def _open(state: SpaceState, keyring: Keyring, records: list[Record],
          done: Mapping[bytes, OpenedPost | Status | None]) -> OpenedSpace:
    """Open ``records``; ``done`` holds earlier results (None for locked) of the others."""
    found: dict[bytes, OpenedPost | Status | None] = dict(done)
    allowed = state.kind.post_kinds if state.kind is not None else frozenset()
    for record in records:
        found[record.id] = _open_one(state, keyring, record, allowed)
    posts: list[OpenedPost] = []
    refused: dict[bytes, Status] = {}
    locked: set[bytes] = set()
    expired: set[bytes] = set()
    for rid in state.order:
        if rid not in found:
            continue
        result = found[rid]
        if result is None:
            if state.records[rid].expired:
                expired.add(rid)
            else:
                locked.add(rid)
        elif isinstance(result, Status):
            refused[rid] = result
        else:
            posts.append(result)
    return OpenedSpace(state, tuple(posts), refused, frozenset(locked), frozenset(expired))


def _open_one(state: SpaceState, keyring: Keyring, record: Record,
              allowed: frozenset[PostKind]) -> OpenedPost | Status | None:
    """One accepted ``sealed`` record: its post, why it is refused, or None if locked."""
    body = state.bodies[record.id]
    assert isinstance(body, SealedBody)  # the fold accepted it
    key = keyring.epoch_keys.get(body.epoch)
    if key is None or record.expired:  # an expired post's husk has nothing to open
        return None
    try:
        post = decode_post(decrypt(key, body.blob,
                                   post_ad(state.space_id, record.author, body.epoch)))
    except DecryptError as exc:
        return Status(Outcome.REJECTED, Reason.UNREADABLE, str(exc))
    except RecordError as exc:
        return Status(Outcome.REJECTED, exc.reason, exc.detail)
    if post.kind not in allowed:
        return Status(Outcome.REJECTED, Reason.BAD_BODY,
                      f"a {post.kind.value} does not belong in a {state.kind}")
    author = state.member_of(record.author) or record.author
    return OpenedPost(record.id, author, record.seq, record.ts, body.epoch, post, record.author)
