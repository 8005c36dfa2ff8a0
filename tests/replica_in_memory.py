"""An in-memory replica for sync and net tests, with the store's chain rules in miniature.

It stands in for ``store.Replica`` where the protocol or the transport, not the store, is under
test. Records are real signed records and ``append`` verifies them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from nacl.signing import SigningKey

from meshcrew.records import Head, Record, RecordError, decode_and_verify, sign_record


def signing_key(n: int) -> SigningKey:
    """A deterministic test key."""
    return SigningKey(hashlib.sha256(b"meshcrew sync test key %d" % n).digest())


def space_id(n: int) -> bytes:
    """A deterministic test space id (not a real genesis; enough for sync)."""
    return hashlib.sha256(b"meshcrew sync test space %d" % n).digest()


def make_chain(key: SigningKey, space: bytes, count: int, *, body_bytes: int = 16,
               start_ts: int = 1_700_000_000_000) -> list[Record]:
    """``count`` linked records by ``key`` in ``space``."""
    chain: list[Record] = []
    prev: bytes | None = None
    for seq in range(1, count + 1):
        body = (b"%d:" % seq).ljust(body_bytes, b".")
        record = sign_record(key, kind="test.note", space=space, seq=seq, prev=prev,
                             ts=start_ts + seq, body=body)
        chain.append(record)
        prev = record.id
    return chain


class MemoryReplica:
    """Per space and author, the contiguous chain held; out-of-order records wait as pending."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self.chains: dict[bytes, dict[bytes, list[Record]]] = {}
        self.pending: dict[bytes, Record] = {}
        self.forks: list[Record] = []
        self.rejected = 0
        for record in records:
            self._insert(record)
        self._drain_pending()

    def frontier(self, space: bytes) -> dict[bytes, Head]:
        return {author: Head(chain[-1].seq, chain[-1].id)
                for author, chain in self.chains.get(space, {}).items() if chain}

    def records_after(self, space: bytes, theirs: Mapping[bytes, Head], *,
                      limit: int) -> list[Record]:
        out: list[Record] = []
        for author in sorted(self.chains.get(space, {})):
            chain = self.chains[space][author]
            have = theirs[author].seq if author in theirs else 0
            if 1 <= have <= len(chain) and chain[have - 1].id != theirs[author].id:
                have -= 1  # their head is not ours: send ours too, as fork evidence (as the store)
            out.extend(chain[have:])
            if len(out) >= limit:
                break
        return out[:limit]

    def append(self, raws: Iterable[bytes]) -> int:
        """Verify and keep records; return how many were new."""
        before = self.count()
        for raw in raws:
            try:
                record = decode_and_verify(raw)
            except RecordError:
                self.rejected += 1
                continue
            self._insert(record)
        self._drain_pending()
        return self.count() - before

    def ids(self, space: bytes | None = None) -> set[bytes]:
        spaces = [space] if space is not None else list(self.chains)
        return {r.id for s in spaces for chain in self.chains.get(s, {}).values() for r in chain}

    def count(self) -> int:
        return len(self.ids())

    def _insert(self, record: Record) -> None:
        chain = self.chains.setdefault(record.space_id, {}).setdefault(record.author, [])
        if record.seq <= len(chain):
            if chain[record.seq - 1].id != record.id:
                self.forks.append(record)  # evidence only; the chain stays as it was
            return
        if _extends(chain, record):
            chain.append(record)
        else:
            self.pending[record.id] = record

    def _drain_pending(self) -> None:
        progress = True
        while progress and self.pending:
            progress = False
            for record_id, record in list(self.pending.items()):
                chain = self.chains[record.space_id][record.author]
                if _extends(chain, record):
                    chain.append(record)
                    del self.pending[record_id]
                    progress = True
                elif record.seq <= len(chain):
                    del self.pending[record_id]


def _extends(chain: list[Record], record: Record) -> bool:
    return record.seq == len(chain) + 1 and record.prev == (chain[-1].id if chain else None)
