"""Backing up a home folder to one encrypted file, and restoring such a file into a home folder.

The file format is :mod:`meshcrew.backup` (pure); this module reads and writes the home's files.

**Backup** reads the replica read-only, so it works while a node runs: each author's records of
each space are read in chain order, a batch at a time, continuing from the last record read, so
a record the node accepts meanwhile is either in the file with its predecessors or not at all.

**Restore** checks everything it can before writing anything: the file opens with the
passphrase and is intact, and the home holds no identity or the same one. Then it takes the
home's writer lock (so it refuses while a node runs there), writes the key file if there is
none, appends every record through the replica (which verifies each signature and chain again;
a refused record is reported with its reason and the rest are restored) and merges the peer
book. The crew's newer records come with the next sync.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshcrew import identity
from meshcrew.backup import (
    BackupContents,
    KdfCost,
    check_new_passphrase,
    open_backup,
    read_header,
    seal_backup,
)
from meshcrew.crypto import Rng
from meshcrew.errors import BackupError, IdentityError
from meshcrew.files import write_private
from meshcrew.home import Home
from meshcrew.node.peerbook import PeerBook, peer_book_file
from meshcrew.records import Head
from meshcrew.service.entries import RejectedEntry
from meshcrew.service.transfer import store_refusal
from meshcrew.store import Replica

BATCH = 2000
"""Records read, or appended, per step (and per progress report)."""

Progress = Callable[[int, int], None]
"""Told ``(done, total)`` records after each batch."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What :func:`back_up` wrote."""

    path: Path
    records: int
    spaces: int
    bytes: int
    peer_book: bool
    """Whether the home had a peer book to back up."""

    def to_json(self) -> dict[str, Any]:
        """The ``backup --json`` object."""
        return {"file": str(self.path), "records": self.records, "spaces": self.spaces,
                "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :func:`restore` did.

    Attributes:
        path: the backup file.
        name: the member's display name.
        key: the member's public key.
        key_file: ``"written"``, ``"kept"`` when the home already held this identity, or
            ``"device"``: a new device key, certified by the member key (``as_device``).
        spaces: spaces in the backup.
        records: records in the backup.
        accepted: how many the replica accepted now.
        duplicates: how many it already held.
        pending: how many wait for a predecessor (none, from an intact backup).
        rejected: the replica's refusals, with their reasons.
        peers: peers in the backup's peer book (merged into the home's).
        device: the new device's key (``as_device``), else None.
        certified: in how many spaces the new device posted its certificate.
    """

    path: Path
    name: str
    key: bytes
    key_file: str
    spaces: int
    records: int
    accepted: int
    duplicates: int
    pending: int
    rejected: tuple[RejectedEntry, ...]
    peers: int
    device: bytes | None = None
    certified: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``restore --json`` object."""
        out = {"file": str(self.path), "name": self.name, "key": self.key.hex(),
               "fingerprint": identity.fingerprint(self.key), "key_file": self.key_file,
               "spaces": self.spaces, "records": self.records, "accepted": self.accepted,
               "duplicates": self.duplicates, "pending": self.pending,
               "rejected": len(self.rejected),
               "rejects": [entry.to_json() for entry in self.rejected], "peers": self.peers}
        if self.device is not None:
            out.update(device=self.device.hex(), device_fingerprint=identity.fingerprint(
                self.device), certified=self.certified)
        return out


# --- backup ----------------------------------------------------------------------------------


def gather(home: Home, me: identity.Identity, *, now_ms: int,
           on_progress: Progress | None = None) -> BackupContents:
    """What a backup of ``home`` holds (the replica is read read-only).

    Raises:
        IdentityError: if the key file is open to others.
        BackupError: if the key file or the peer book cannot be read.
        ReplicaError: if the replica cannot be read.
    """
    try:
        identity.check_mode(home.key_file)
        key_file = home.key_file.read_bytes()
    except OSError as exc:
        raise BackupError(f"Cannot read the key file {home.key_file}: "
                          f"{exc.strerror or exc}.") from None
    spaces: list[bytes] = []
    raws: list[bytes] = []
    if home.replica_file.exists():
        with Replica.open(home, read_only=True) as replica:
            spaces = replica.spaces()
            total = replica.record_count()
            for space_id in spaces:
                for batch in _batches_in_chain_order(replica, space_id):
                    raws += batch
                    if on_progress is not None:  # a running node may add records meanwhile
                        on_progress(len(raws), max(total, len(raws)))
    peers = peer_book_file(home)
    try:
        peer_book = peers.read_bytes() if peers.exists() else None
    except OSError as exc:
        raise BackupError(f"Cannot read the peer book {peers}: {exc.strerror or exc}.") from None
    return BackupContents(now_ms, key_file, me.public_key, me.name, tuple(spaces), tuple(raws),
                          peer_book)


def _batches_in_chain_order(replica: Replica, space_id: bytes) -> Iterator[list[bytes]]:
    """A space's accepted records, each author's in chain order, :data:`BATCH` at a time."""
    heads: dict[bytes, Head] = {}
    while batch := replica.records_after(space_id, heads, limit=BATCH):
        for record in batch:
            heads[record.author] = Head(record.seq, record.id)
        yield [record.raw for record in batch]


def back_up(home: Home, path: Path, me: identity.Identity, passphrase: bytes, *,
            cost: KdfCost, now_ms: int, rng: Rng = os.urandom,
            on_progress: Progress | None = None) -> BackupReport:
    """Write a backup of ``home`` to ``path`` (atomically, mode 0600), sealed with
    ``passphrase``.

    Raises:
        BackupError: if the passphrase is too easy to guess (:func:`check_new_passphrase`), or
            the file cannot be written (nothing is left behind).
        IdentityError, ReplicaError: if the key file or replica cannot be read.
    """
    check_new_passphrase(passphrase)
    contents = gather(home, me, now_ms=now_ms, on_progress=on_progress)
    data = seal_backup(contents, passphrase, cost=cost, rng=rng)
    write_private_file(path, data)
    return BackupReport(path, len(contents.records), len(contents.spaces), len(data),
                        contents.peer_book is not None)


def check_backup_target(path: Path) -> None:
    """Refuse at once a place where no backup can be written (the CLI asks before it asks for
    the passphrase twice, then reads every record).

    Raises:
        BackupError: if ``path`` is a folder, or its folder does not exist.
    """
    if path.is_dir():
        raise BackupError(f"{path} is a folder; give a file name in it.")
    if not path.parent.is_dir():
        raise BackupError(f"Cannot write {path}: there is no folder {path.parent}.")


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` (mode 0600), flush it to disk and rename it over ``path``.

    Raises:
        BackupError: if it cannot be written (the temporary file is removed).
    """
    try:
        write_private(path, data)
    except OSError as exc:
        raise BackupError(f"Cannot write {path}: {exc.strerror or exc}.") from None


# --- restore ---------------------------------------------------------------------------------


def read_backup(path: Path, passphrase: bytes) -> BackupContents:
    """Open the backup file at ``path``.

    Raises:
        BackupError: if it cannot be read, is not a backup, is damaged or cut short, or the
            passphrase does not open it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return open_backup(data, passphrase)


def check_backup_file(path: Path) -> None:
    """Refuse at once a file that is missing, unreadable, not a backup or damaged: all of it can
    be told without the passphrase, so the CLI asks before it asks for one.

    Raises:
        BackupError: with the sentence :func:`read_backup` would give.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    read_header(data)


def restore(home: Home, path: Path, passphrase: bytes, *, key_passphrase: bytes | None,
            now_ms: int, on_progress: Progress | None = None,
            as_device: bool = False) -> RestoreReport:
    """Restore the backup at ``path`` into ``home``.

    With ``as_device`` (the member's laptop still runs), the home gets a new device key
    instead of the member key: the member key, read from the backup in memory, certifies it,
    and the new device posts that certificate in each space the member is let in to, so it
    writes its own chain and never forks the old laptop's (docs/spaces.md, A member's
    devices). The member key is not written here; the old laptop's node rotates the keys to
    the new device once it takes the certificates.

    Args:
        home: the home folder (created if missing).
        path: the backup file.
        passphrase: the backup's passphrase.
        key_passphrase: the passphrase of a protected key file already in ``home``, needed only
            to tell whether it is the backup's identity when the two files differ; with
            ``as_device``, the passphrase of the backup's key file, if protected (the new
            device's key file is protected by it too).
        now_ms: the clock, for the replica's checks.
        on_progress: told ``(done, total)`` as records are appended.

    Raises:
        BackupError: if the file does not open or is damaged, or ``home`` holds another
            identity (with ``as_device``: any identity), or the backup's key file does not
            open (then nothing is written).
        HomeError: if a node is running for ``home``.
        ReplicaError: if the replica cannot be written.
    """
    contents = read_backup(path, passphrase)
    member: identity.Identity | None = None
    if as_device:
        if home.key_file.exists():
            raise BackupError(f"The home folder {home.path} already holds an identity; restore "
                              "as a new device into an empty home folder (--home DIR).")
        try:
            member = identity.read_key_file(contents.key_file, path, passphrase=key_passphrase)
        except IdentityError as exc:
            raise BackupError(f"The backup's key file does not open: {exc}") from None
    had_key = _check_same_identity(home, contents, key_passphrase)
    device: identity.Identity | None = None
    with Replica.open(home) as replica:  # the writer lock: refused while a node runs here
        if not had_key and home.key_file.exists():  # someone ran init meanwhile
            had_key = _check_same_identity(home, contents, key_passphrase)
        if member is not None:
            if had_key:
                raise BackupError(f"A key file appeared at {home.key_file} during the restore; "
                                  "nothing was replaced.")
            device = identity.Identity.generate(member.name)
            try:
                identity.save(device, home.key_file, passphrase=key_passphrase)
            except IdentityError as exc:
                raise BackupError(str(exc)) from None
        elif not had_key:
            _write_key_file(home.key_file, contents.key_file)
        accepted = duplicates = 0
        pending: set[bytes] = set()
        rejected: list[RejectedEntry] = []
        total = len(contents.records)
        for start in range(0, total, BATCH):
            report = replica.append(contents.records[start : start + BATCH],
                                    sender=f"backup:{path.name}", now_ms=now_ms)
            accepted += len(report.accepted)
            duplicates += report.duplicates
            pending.update(report.pending)
            pending.difference_update(report.accepted)
            rejected += [store_refusal(entry) for entry in report.rejected]
            if on_progress is not None:
                on_progress(min(start + BATCH, total), total)
        certified = 0
        if member is not None and device is not None:
            certified = _certify_new_device(replica, member, device, now_ms)
    peers = _merge_peer_book(home, contents.peer_book) if contents.peer_book else 0
    return RestoreReport(path, contents.member_name, contents.member_key,
                         "device" if device else "kept" if had_key else "written",
                         len(contents.spaces), total, accepted, duplicates, len(pending),
                         tuple(rejected), peers, device.public_key if device else None,
                         certified)


def _certify_new_device(replica: Replica, member: identity.Identity,
                        device: identity.Identity, now_ms: int) -> int:
    """Certify ``device`` with the member key and post the certificate in each space of the
    replica where the member is let in (keeping it in the home folder for spaces joined
    later); returns in how many."""
    from meshcrew.service import Member
    from meshcrew.spaces.devices import certify_device

    service = Member(replica, device, clock=lambda: now_ms)
    return len(service.adopt_certificate(member.public_key,
                                         certify_device(member.signing_key, device.public_key)))


def _check_same_identity(home: Home, contents: BackupContents,
                         key_passphrase: bytes | None) -> bool:
    """Whether ``home`` already holds the backup's identity (False: it holds none).

    Raises:
        BackupError: if it holds another identity, or one that cannot be checked.
    """
    if not home.key_file.exists():
        return False
    try:
        if home.key_file.read_bytes() == contents.key_file:
            return True
        present = identity.load(home.key_file, passphrase=key_passphrase)
    except (OSError, IdentityError) as exc:
        raise BackupError(f"Cannot check the identity already in {home.path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if present.public_key != contents.member_key:
        raise BackupError(
            f"The home folder {home.path} already holds another identity ({present.name}, "
            f"{present.fingerprint}); the backup is of {contents.member_name} "
            f"({contents.fingerprint}). Restore into an empty home folder (--home DIR).")
    return True


def _write_key_file(path: Path, data: bytes) -> None:
    """Write the key file (mode 0600) beside its name, flush it and link it in place; never
    replaces an existing key file."""
    try:
        write_private(path, data, overwrite=False)
    except FileExistsError:
        raise BackupError(f"A key file appeared at {path} during the restore; "
                          "nothing was replaced.") from None
    except OSError as exc:
        raise BackupError(f"Cannot write the key file {path}: {exc.strerror or exc}.") from None


def _merge_peer_book(home: Home, data: bytes) -> int:
    """Merge the backup's peer book into the home's (addresses, last seen, bans, port);
    returns how many peers it named. An unreadable book is skipped: it holds only addresses."""
    try:
        doc = json.loads(data)
        peers = dict(doc["peers"])
        banned = {str(peer) for peer in doc.get("banned", [])}
        port = doc.get("listen_port")
    except (ValueError, TypeError, KeyError, AttributeError):
        return 0
    book = PeerBook.load(home)
    for peer_id, entry in peers.items():
        if not isinstance(entry, dict):
            continue
        book.learn(str(peer_id), [str(a) for a in entry.get("addrs", [])],
                   source=str(entry.get("source", "connection")))
        seen, known = entry.get("last_seen_ms"), book.get(str(peer_id))
        if isinstance(seen, int) and known is not None and (known.last_seen_ms or 0) < seen:
            book.seen(str(peer_id), seen)
    book.set_banned(book.banned | banned)
    if book.listen_port is None and isinstance(port, int) and 0 < port < 65536:
        book.listen_port = port
    book.save()
    return len(peers)
