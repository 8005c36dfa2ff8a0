"""Receipts: which members hold which records, learned from their frontiers.

Every sync session tells the node each peer's frontier of every space they share (per author,
the head of the chain the peer holds). A chain is hash-linked, so a peer whose head of author A
is at seq ``s`` holds every record of A up to ``s``. That is enough to answer "who has received
my check-in" and "what does each peer lack" without asking anyone.

The node also learns from gossip: a record published by its own author proves the author holds
its chain up to it. Frontiers are kept per (space, peer key): a member's linked laptop is a
peer of its own, and the readers count a member as holding a record when the member key or any
of their current devices does (:meth:`Node.seen_by`, ``tui.health.member_holdings``). They
are saved in the home folder (``receipts.bin``, msgpack) so the answers survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import msgpack

from meshcrew.home import Home
from meshcrew.node.state_files import replace_file
from meshcrew.records import Head

log = logging.getLogger("meshcrew.node")


def receipts_file(home: Home) -> Path:
    """Where the receipts of ``home`` are kept."""
    return home.path / "receipts.bin"


class Receipts:
    """Per space and member: the furthest frontier seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._frontiers: dict[bytes, dict[bytes, dict[bytes, Head]]] = {}
        self._dirty = False

    @classmethod
    def load(cls, home: Home) -> Receipts:
        """The receipts saved in ``home`` (none if missing or damaged)."""
        receipts = cls(receipts_file(home))
        try:
            doc = msgpack.unpackb(receipts.path.read_bytes(), raw=False, strict_map_key=False)
            for space, members in doc.items():
                receipts._frontiers[bytes(space)] = {
                    bytes(member): {bytes(a): Head(int(h[0]), bytes(h[1]))
                                    for a, h in heads.items()}
                    for member, heads in members.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, IndexError, AttributeError,
                msgpack.UnpackException) as exc:
            log.warning("the receipts file %s is damaged (%s); starting afresh", receipts.path,
                        exc)
            receipts._frontiers.clear()
        return receipts

    def note_frontier(self, space_id: bytes, member: bytes, frontier: Mapping[bytes, Head]) -> None:
        """A member's frontier of a space, as a sync session reported it."""
        heads = self._frontiers.setdefault(space_id, {}).setdefault(member, {})
        for author, head in frontier.items():
            if author not in heads or head.seq > heads[author].seq:
                heads[author] = head
                self._dirty = True

    def note_author_holds(self, space_id: bytes, author: bytes, head: Head) -> None:
        """The author published their record ``head``, so they hold their chain up to it."""
        self.note_frontier(space_id, author, {author: head})

    def holders(self, space_id: bytes, author: bytes, seq: int) -> list[bytes]:
        """Member keys known to hold the record at ``seq`` of ``author``'s chain, sorted."""
        members = self._frontiers.get(space_id, {})
        return sorted(m for m, heads in members.items()
                      if author in heads and heads[author].seq >= seq)

    def frontiers(self, space_id: bytes) -> dict[bytes, dict[bytes, Head]]:
        """Every peer key's furthest frontier seen in a space (a member key, or a device's)."""
        return {key: dict(heads) for key, heads in self._frontiers.get(space_id, {}).items()}

    def frontier(self, space_id: bytes, member: bytes) -> dict[bytes, Head] | None:
        """The furthest frontier seen of a member in a space (None if never seen)."""
        heads = self._frontiers.get(space_id, {}).get(member)
        return None if heads is None else dict(heads)

    def lacks(self, space_id: bytes, member: bytes, ours: Mapping[bytes, Head]) -> int | None:
        """How many of our records of the space the member is not known to hold (None if their
        frontier was never seen)."""
        theirs = self._frontiers.get(space_id, {}).get(member)
        if theirs is None:
            return None
        return sum(max(0, head.seq - (theirs[a].seq if a in theirs else 0))
                   for a, head in ours.items())

    def save(self) -> None:
        """Write the receipts if they changed; failures are only logged."""
        if not self._dirty:
            return
        doc = {space: {member: {a: [h.seq, h.id] for a, h in heads.items()}
                       for member, heads in members.items()}
               for space, members in self._frontiers.items()}
        try:
            replace_file(self.path, msgpack.packb(doc, use_bin_type=True))
        except OSError as exc:
            log.warning("cannot save the receipts %s: %s", self.path, exc)
            return
        self._dirty = False
