"""The peer book: every peer's last known addresses, when it was last seen and last synced.

The node learns addresses from invite codes, mDNS, ``--bootstrap``, and libp2p's identify on
every connection; it redials members it is not connected to from here, with exponential
backoff (:mod:`meshcrew.node.dialer`). The book also keeps the ban list and the port the node
listened on, so a restarted node is found where it was.

"Last synced" is when a catch-up session with the peer last ran to the end (this node's clock),
overall and per space: the session brought a space level when nothing was left over in it
(see :attr:`~meshcrew.sync.SyncStats.spaces_synced`).

The file (``peers.json`` in the home folder, mode 0600) is JSON so a person can read it; it is
rewritten whole, beside its final name and renamed, so a crash never leaves half a file. A
damaged file is set aside (``peers.json.damaged``) and the node starts with an empty book: it
loses addresses, never records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshcrew.home import Home
from meshcrew.node.state_files import replace_file

log = logging.getLogger("meshcrew.node")

MAX_PEERS = 512
"""Peers kept; beyond it the least recently seen peer is forgotten."""
MAX_ADDRS = 8
"""Addresses kept per peer, newest first."""
MAX_SYNCED_SPACES = 64
"""Spaces whose last sync is kept per peer; beyond it the longest unsynced is forgotten."""
FILE_VERSION = 1


def peer_book_file(home: Home) -> Path:
    """Where the peer book of ``home`` lives."""
    return home.path / "peers.json"


@dataclass(slots=True)
class PeerEntry:
    """What the node knows of one peer.

    Attributes:
        peer_id: the libp2p peer id (its member key, for a meshcrew peer).
        addrs: multiaddrs ending in ``/p2p/<peer id>``, newest first.
        last_seen_ms: when a connection to it was last open (None: never connected).
        source: how it was first learned: ``invite``, ``mdns``, ``bootstrap`` or ``connection``.
        last_sync_ms: when a sync session with it that shared at least one space last ran to
            the end (None: never).
        spaces_synced: per space id, when a session last brought that space level with it.
    """

    peer_id: str
    addrs: list[str] = field(default_factory=list)
    last_seen_ms: int | None = None
    source: str = "connection"
    last_sync_ms: int | None = None
    spaces_synced: dict[bytes, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The entry as stored."""
        return {"addrs": self.addrs, "last_seen_ms": self.last_seen_ms, "source": self.source,
                "last_sync_ms": self.last_sync_ms,
                "spaces_synced": {s.hex(): at for s, at in sorted(self.spaces_synced.items())}}


class PeerBook:
    """Peers' addresses, the ban list and the listen port; :meth:`save` writes them if changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._peers: dict[str, PeerEntry] = {}
        self._banned: set[str] = set()
        self._listen_port: int | None = None
        self._dirty = False

    @classmethod
    def load(cls, home: Home) -> PeerBook:
        """The book of ``home`` (empty if there is none yet or it is damaged)."""
        book = cls(peer_book_file(home))
        try:
            doc = json.loads(book.path.read_text(encoding="utf-8"))
            book._read(doc)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("the peer book %s is damaged (%s); starting an empty one", book.path,
                        exc)
            book._peers.clear()
            book._banned.clear()
            book._listen_port = None
            with suppress(OSError):
                book.path.replace(book.path.with_name(book.path.name + ".damaged"))
        return book

    def _read(self, doc: Any) -> None:
        if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
            raise ValueError("not a peer book of this version")
        port = doc.get("listen_port")
        self._listen_port = port if isinstance(port, int) and 0 < port < 65536 else None
        self._banned = {str(p) for p in doc.get("banned", [])}
        for peer_id, entry in dict(doc.get("peers", {})).items():
            seen = entry.get("last_seen_ms")
            synced = entry.get("last_sync_ms")
            spaces = {bytes.fromhex(s): at for s, at in dict(entry.get("spaces_synced", {})).items()
                      if isinstance(at, int)}
            self._peers[str(peer_id)] = PeerEntry(
                str(peer_id), [str(a) for a in entry.get("addrs", [])][:MAX_ADDRS],
                seen if isinstance(seen, int) else None, str(entry.get("source", "connection")),
                synced if isinstance(synced, int) else None, spaces)

    # --- peers ---------------------------------------------------------------------------------

    def get(self, peer_id: str) -> PeerEntry | None:
        """The entry of a peer, if known."""
        return self._peers.get(peer_id)

    def entries(self) -> list[PeerEntry]:
        """Every known peer, most recently seen first."""
        return sorted(self._peers.values(), key=lambda e: -(e.last_seen_ms or 0))

    def learn(self, peer_id: str, addrs: list[str], *, source: str) -> None:
        """Remember addresses of a peer (newest first); keep at most :data:`MAX_ADDRS`."""
        suffix = f"/p2p/{peer_id}"
        fresh = [a for a in addrs if a.endswith(suffix)]
        entry = self._peers.get(peer_id)
        if entry is None:
            entry = self._peers[peer_id] = PeerEntry(peer_id, source=source)
            self._dirty = True
            self._forget_beyond_limit(keep=peer_id)
        merged = list(dict.fromkeys([*fresh, *entry.addrs]))[:MAX_ADDRS]
        if merged != entry.addrs:
            entry.addrs = merged
            self._dirty = True

    def seen(self, peer_id: str, now_ms: int) -> None:
        """Note that a connection to the peer is open now."""
        entry = self._peers.get(peer_id)
        if entry is None:
            entry = self._peers[peer_id] = PeerEntry(peer_id)
            self._forget_beyond_limit(keep=peer_id)
        entry.last_seen_ms = now_ms
        self._dirty = True

    def synced(self, peer_id: str, spaces: Iterable[bytes], now_ms: int) -> None:
        """Note that a sync session with the peer sharing at least one space ran to the end
        now, bringing ``spaces`` level (none, if every space stopped at the per-session cap)."""
        entry = self._peers.get(peer_id)
        if entry is None:
            entry = self._peers[peer_id] = PeerEntry(peer_id)
            self._forget_beyond_limit(keep=peer_id)
        entry.last_sync_ms = now_ms
        for space_id in spaces:
            entry.spaces_synced[space_id] = now_ms
        while len(entry.spaces_synced) > MAX_SYNCED_SPACES:
            del entry.spaces_synced[min(entry.spaces_synced, key=entry.spaces_synced.__getitem__)]
        self._dirty = True

    def last_sync_ms(self) -> int | None:
        """When a sync with any peer last ran to the end (None: never)."""
        return max((e.last_sync_ms for e in self._peers.values() if e.last_sync_ms is not None),
                   default=None)

    def _forget_beyond_limit(self, *, keep: str) -> None:
        """Forget the least recently seen peers (never ``keep``, just learned) over the limit."""
        while len(self._peers) > MAX_PEERS:
            oldest = min((e for e in self._peers.values() if e.peer_id != keep),
                         key=lambda e: e.last_seen_ms or 0)
            del self._peers[oldest.peer_id]

    # --- bans and the port ---------------------------------------------------------------------

    @property
    def banned(self) -> frozenset[str]:
        """Peers banned for sending invalid data."""
        return frozenset(self._banned)

    def set_banned(self, banned: frozenset[str]) -> None:
        """Replace the ban list (the host's scores are the truth while it runs)."""
        if banned != self._banned:
            self._banned = set(banned)
            self._dirty = True

    @property
    def listen_port(self) -> int | None:
        """The TCP port the node last listened on."""
        return self._listen_port

    @listen_port.setter
    def listen_port(self, port: int | None) -> None:
        if port != self._listen_port:
            self._listen_port = port
            self._dirty = True

    # --- file ----------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the book if anything changed since the last save; failures are only logged
        (addresses are a convenience, never worth stopping the node for)."""
        if not self._dirty:
            return
        doc = {"version": FILE_VERSION, "listen_port": self._listen_port,
               "banned": sorted(self._banned),
               "peers": {p: e.to_json() for p, e in sorted(self._peers.items())}}
        data = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")
        try:
            replace_file(self.path, data)
        except OSError as exc:
            log.warning("cannot save the peer book %s: %s", self.path, exc)
            return
        self._dirty = False
