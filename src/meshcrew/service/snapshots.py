"""Folded views kept in the home folder between runs, so a big replica lists its spaces at once.

Folding and decrypting a space of 100,000 records takes seconds of pure Python. What the home
screen and the space screen ask first (the summary, the log, the members, the cycle, energy,
proposals and removals) is small beside the fold, so :class:`ViewSnapshots` keeps those answers
of each space's view in a file, and :class:`SnapshotView` serves them at the next start. The
fold itself (the space's state and its opened posts) is done only when a read needs it, from
the replica's records as of the snapshot's frontier.

A snapshot is used only when it is exactly the view the fold would give now:

- it is encrypted and authenticated (XChaCha20-Poly1305) under a key derived from this
  member's identity key, since it holds the plaintext of posts; a file that does not open, or
  opens under another member's key, is ignored (and so is one made for another space: the
  space id is authenticated with it);
- its header names the space's frontier (every author's head, sequence and id) and husk count
  in the replica it was made from: any difference and the space is folded (and snapshotted)
  again;
- it names the code that made it (a hash of the source of the modules that compute views, and
  the Python version): a snapshot made by another version of meshcrew is folded again.

Unpickling is safe here only because the bytes were authenticated first: a file that could
be forged would need this member's identity key, which opens everything anyway.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import logging
import os
import pickle
import sys
import tempfile
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from meshcrew import crypto
from meshcrew.collector import paused
from meshcrew.errors import DecryptError
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.records import Head
from meshcrew.service.entries import PostEntry, RemovalEntry, SpaceSummary
from meshcrew.service.space_entries import _CHECKIN_KINDS
from meshcrew.service.views import SpaceView
from meshcrew.spaces import (
    Keyring,
    OpenedPost,
    OpenedSpace,
    PostKind,
    Rhythm,
    SpaceMeta,
    SpaceState,
)
from meshcrew.spaces import views as domain_views
from meshcrew.store import Replica

if TYPE_CHECKING:
    from functools import cached_property as memo
else:
    from meshcrew.service.memo import memo  # cached_property without its lock

log = logging.getLogger(__name__)

FORMAT = 3
"""The snapshot file's layout; a different one is folded again. (2: the member a device
speaks for, and the device of each log entry, so a linked laptop's snapshot reads as its fold;
3: the space's current devices, so receipts count a member's laptops before the fold.)"""

_MAGIC = b"meshcrew view snapshot\n"
_CODE_PARTS = ("spaces", "service", "records.py", "crypto.py", "identity.py", "reasons.py")
"""The parts of the package whose code decides what a view holds."""

_KEPT = ("settings", "_member_views", "names", "member_entries", "last_ts", "energy",
         "_deadlines", "_proposals", "_cycles", "_unproven_cards")
"""The view's computed values a snapshot keeps as they are."""


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


class _Pickler(pickle.Pickler):
    """Pickles read-only mappings (which posts hold) as the mappings they are."""

    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[MappingProxyType] = lambda proxy: (_mapping_proxy, (dict(proxy),))


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def code_version() -> bytes:
    """A hash of the source of the modules that compute views, and of the Python version."""
    digest = hashlib.blake2b(repr(sys.version_info[:2]).encode(), digest_size=16)
    package = Path(__file__).resolve().parent.parent
    for part in _CODE_PARTS:
        path = package / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(package)).encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.digest()


def snapshot_key(identity: Identity) -> bytes:
    """The key this member's snapshots are encrypted under (derived from the identity key)."""
    return hashlib.blake2b(identity.seed, digest_size=crypto.KEY_BYTES,
                           person=b"meshcrew-views").digest()


def _frontier_key(frontier: Mapping[bytes, Head]) -> tuple[tuple[bytes, int, bytes], ...]:
    return tuple(sorted((author, head.seq, head.id) for author, head in frontier.items()))


class SnapshotView(SpaceView):
    """A view restored from a snapshot: what it kept is answered at once; the rest folds.

    ``state`` and ``opened`` are folded on first use from the replica's records of the
    snapshot's frontier (a read-only connection of its own, so any thread may ask).
    """

    def __init__(self, space_id: bytes, frontier: Mapping[bytes, Head], identity: Identity,
                 home: Home, kept: Mapping[str, Any]) -> None:
        # Not SpaceView.__init__: the state is folded on demand.
        self.space_id = space_id
        self.frontier = dict(frontier)
        self.me = identity.public_key
        self.keyring: Keyring = kept["keyring"]
        self.genesis_meta: SpaceMeta | None = kept["genesis_meta"]
        self._previous = None
        self._identity = identity
        self._home = home
        self._summary: SpaceSummary = kept["summary"]
        self._my_member: bytes = kept["my_member"]
        self._device_members: dict[bytes, bytes] = kept["device_members"]
        self._checkin_space: bool = kept["checkin_space"]
        self._removals: list[RemovalEntry] = kept["removals"]
        self._recent: tuple[Rhythm, int, frozenset[bytes], tuple[OpenedPost, ...]] | None = \
            kept["recent_checkins"]
        self.__dict__.update({name: kept[name] for name in _KEPT if name in kept})
        self.__dict__["post_entries"] = kept["post_entries"]
        self._folding = threading.Lock()

    @memo
    def _fold(self) -> SpaceView:
        """The view folded from the replica's records as of this view's frontier."""
        with self._folding:  # a second thread waits for the first's fold
            done: SpaceView | None = self.__dict__.get("_fold")
            if done is not None:
                return done
            with Replica.open(self._home, read_only=True) as replica:
                records = [r for r in replica.space_records(self.space_id, lean=True)
                           if r.seq <= self.frontier.get(r.author, Head(0, b"")).seq]
            with paused(len(records)):
                folded = SpaceView.folded(self.space_id, records, self.frontier,
                                          self._identity)
                folded.opened  # noqa: B018 - decrypting is part of the work
            # As if read: a view extending this one takes them over (its opened posts too).
            self.__dict__.update(state=folded.state, opened=folded.opened, _fold=folded)
            return folded

    @property
    def my_member(self) -> bytes:
        """As :attr:`SpaceView.my_member` (kept: on a linked device, its member)."""
        return self._my_member

    @property
    def device_members(self) -> dict[bytes, bytes]:
        """Each current device of the space with its member key (kept), as the fold has them:
        receipts count a member's laptops without the fold."""
        return dict(self._device_members)

    @property
    def complete(self) -> bool:
        """Whether the fold is done (every read is then as fast as a folded view's)."""
        return "_fold" in self.__dict__

    def fold_now(self) -> None:
        """Fold now (in a worker thread, say) rather than at the first read that needs it."""
        self._fold  # noqa: B018 - computing it is the point

    @memo
    def state(self) -> SpaceState:  # type: ignore[override]
        """The space's state (folded on first use)."""
        return self._fold.state

    @memo
    def opened(self) -> OpenedSpace:
        """The posts this member can read (folded and decrypted on first use)."""
        return self._fold.opened

    def summary(self, now_ms: int) -> SpaceSummary:
        """As :meth:`SpaceView.summary`, from the kept summary and the cycle at ``now_ms``."""
        if "state" in self.__dict__:
            return super().summary(now_ms)
        meta = self.meta
        needs_checkin = (self._summary.my_status == "active" and meta is not None
                         and self._checkin_space
                         and self._my_member not in self._cycle_view(meta.rhythm, now_ms).checkins)
        return dataclasses.replace(self._summary, needs_checkin=needs_checkin)

    def removal_entries(self) -> list[RemovalEntry]:
        """As :meth:`SpaceView.removal_entries` (kept)."""
        return list(self._removals)

    def _cycle_view(self, rhythm: Rhythm, now_ms: int) -> domain_views.CycleView:
        """As :meth:`SpaceView._cycle_view`; a cycle that starts after the snapshot's first
        kept check-in is worked out from the kept check-ins, without the fold."""
        cycles: dict[Any, domain_views.CycleView] = self.__dict__.setdefault("_cycles", {})
        cycle = rhythm.cycle_at(now_ms)
        recent = self._recent
        if (rhythm, cycle) not in cycles and "opened" not in self.__dict__ \
                and recent is not None and recent[0] == rhythm and cycle.start_ms >= recent[1]:
            _, _, active, checkins = recent
            cycles[rhythm, cycle] = domain_views.checkin_cycle_of(checkins, active, rhythm,
                                                                  now_ms)
        return super()._cycle_view(rhythm, now_ms)


class ViewSnapshots:
    """The snapshots of one member's views, in ``views/`` of their home folder.

    Args:
        home: the home folder.
        identity: the member (their key encrypts the snapshots).
    """

    def __init__(self, home: Home, identity: Identity) -> None:
        self.home = home
        self.identity = identity
        self.folder = home.path / "views"
        self._key = snapshot_key(identity)

    def path(self, space_id: bytes) -> Path:
        """The file of one space's snapshot."""
        return self.folder / f"{space_id.hex()}.view"

    def forget(self, space_id: bytes) -> None:
        """Delete the space's snapshot (its posts expired: their plaintext must go)."""
        try:
            self.path(space_id).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the view snapshot %s: %s", self.path(space_id), exc)

    def _associated(self, space_id: bytes) -> bytes:
        return _MAGIC + self.identity.public_key + space_id

    def load(self, space_id: bytes, frontier: Mapping[bytes, Head],
             expired: int) -> SnapshotView | None:
        """The space's view from its snapshot, if there is one made for exactly these records.

        Args:
            space_id: the space.
            frontier: the replica's frontier of the space now.
            expired: how many of its records are husks now.

        Returns:
            None if there is no snapshot, it does not open with this member's key, or it was
            made for other records or by other code.
        """
        try:
            blob = self.path(space_id).read_bytes()
        except OSError:
            return None
        try:
            plain = crypto.decrypt(self._key, blob, self._associated(space_id))
        except DecryptError:
            log.warning("the view snapshot of space %s does not open; folding it",
                        space_id.hex()[:12])
            return None
        header_size = int.from_bytes(plain[:4], "big")
        header = pickle.loads(plain[4:4 + header_size])
        entries = header.pop("entries", 0)
        expected = {"format": FORMAT, "code": code_version(), "member": self.identity.public_key,
                    "space": space_id, "frontier": _frontier_key(frontier), "expired": expired}
        if header != expected:
            self.forget(space_id)  # it holds posts that may have expired since
            return None
        with paused(entries):
            kept = pickle.loads(plain[4 + header_size:])
            kept["post_entries"] = _entries_of(space_id, kept.pop("entry_columns"))
        return SnapshotView(space_id, frontier, self.identity, self.home, kept)

    def save(self, view: SpaceView, expired: int, now_ms: int) -> None:
        """Write the snapshot of ``view`` (computing what it keeps, if not yet).

        Call it before the view is shared with other threads (it reads the view's computed
        values). Raises OSError if the file cannot be written.
        """
        summary = view.summary(now_ms)
        meta = view.meta
        recent = None
        if meta is not None:
            start = meta.rhythm.cycle_at(now_ms).start_ms
            recent = (meta.rhythm, start, frozenset(view.state.active), tuple(
                p for p in view.opened.of_kind(PostKind.CHECKIN) if p.ts >= start))
        view.member_entries  # noqa: B018 - computing it is the point
        view.energy  # noqa: B018
        view.proposals(now_ms)
        entries = view.post_entries
        kept: dict[str, Any] = {name: view.__dict__[name] for name in _KEPT
                                if name in view.__dict__}
        kept.update(keyring=view.keyring, genesis_meta=view.genesis_meta, summary=summary,
                    my_member=view.my_member,
                    device_members={d.key: d.member for d in view.state.devices.values()
                                    if d.revoked_by is None},
                    checkin_space=view.state.kind in _CHECKIN_KINDS,
                    removals=view.removal_entries(), recent_checkins=recent,
                    entry_columns=_columns_of(entries))
        header = pickle.dumps({"format": FORMAT, "code": code_version(), "member": view.me,
                               "space": view.space_id, "frontier": _frontier_key(view.frontier),
                               "expired": expired, "entries": len(entries)})
        plain = len(header).to_bytes(4, "big") + header + _dumps(kept)
        blob = crypto.encrypt(self._key, plain, self._associated(view.space_id), os.urandom)
        self._write(self.path(view.space_id), blob)

    def _write(self, path: Path, blob: bytes) -> None:
        """Write ``blob`` to ``path`` whole or not at all, readable by this user only."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".view-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(blob)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _columns_of(entries: tuple[PostEntry, ...]) -> tuple[list[Any], ...]:
    """A log as columns (pickled and rebuilt much faster than one object per entry)."""
    return ([e.id for e in entries], [e.kind for e in entries], [e.author for e in entries],
            [e.author_name for e in entries], [e.seq for e in entries], [e.ts for e in entries],
            [e.fields for e in entries], [e.device for e in entries])


def _entries_of(space_id: bytes, columns: tuple[list[Any], ...]) -> tuple[PostEntry, ...]:
    ids, kinds, authors, names, seqs, stamps, fields, devices = columns
    space = [space_id] * len(ids)
    return tuple(map(PostEntry, ids, space, kinds, authors, names, seqs, stamps, fields,
                     devices))
