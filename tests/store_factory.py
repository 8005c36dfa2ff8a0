"""Record factories for the replica's tests (shared by tests/test_store*.py and test_crash.py).

Keys, spaces and timestamps are deterministic, and ed25519 signatures are too, so the same call
gives the same record ids in every run and in every process (the crash test relies on that).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
from nacl.signing import SigningKey

from meshcrew.records import PROTOCOL_VERSION, SIGN_DOMAIN, Record, sign_record

START_MS = 1_700_000_000_000
NOW_MS = START_MS + 10**9
"""A receiver's clock later than every record made here."""


def key(n: int) -> SigningKey:
    """A deterministic test key."""
    return SigningKey(hashlib.sha256(b"meshcrew store test key %d" % n).digest())


def space(n: int) -> bytes:
    """A deterministic space id (no genesis needed: the store does not require one)."""
    return hashlib.sha256(b"meshcrew store test space %d" % n).digest()


class Chain:
    """Signs one author's records in one space, in chain order, and forks on request."""

    def __init__(self, signer: SigningKey, space_id: bytes, *, start_ts: int = START_MS) -> None:
        self.key = signer
        self.space = space_id
        self.author = bytes(signer.verify_key)
        self.records: list[Record] = []
        self._ts = start_ts

    def next(self, *, body: bytes = b"", ts: int | None = None, kind: str = "test.note") -> Record:
        """Sign the chain's next record (``ts`` defaults to one ms after the previous one)."""
        seq = len(self.records) + 1
        prev = self.records[-1].id if self.records else None
        self._ts = self._ts + 1 if ts is None else ts
        record = sign_record(self.key, kind=kind, space=self.space, seq=seq, prev=prev,
                             ts=self._ts, body=body or b"note %d" % seq)
        self.records.append(record)
        return record

    def extend(self, count: int) -> list[Record]:
        """Sign ``count`` more records; return them."""
        return [self.next() for _ in range(count)]

    def at(self, seq: int, *, prev: bytes | str | None = "chain", ts: int | None = None,
           body: bytes = b"another", kind: str = "test.note") -> Record:
        """A record at ``seq`` that is not part of the chain (for forks and broken links).

        ``prev`` defaults to the chain's record at ``seq - 1`` (a plain fork); ``ts`` to the
        chain's record at ``seq`` (or the last ts).
        """
        if prev == "chain":
            prev = self.records[seq - 2].id if seq >= 2 else None
        assert prev is None or isinstance(prev, bytes)
        if ts is None:
            ts = self.records[seq - 1].ts if seq <= len(self.records) else self._ts
        return sign_record(self.key, kind=kind, space=self.space, seq=seq, prev=prev, ts=ts,
                           body=body)


def raws(records: list[Record]) -> list[bytes]:
    """The encoded records."""
    return [r.raw for r in records]


def craft(signer: SigningKey, fields: list[Any]) -> bytes:
    """Encode and sign arbitrary envelope fields, bypassing sign_record's checks.

    ``fields`` are the eight signed fields; the signature is appended. Used to produce the bytes
    a buggy or hostile peer could send.
    """
    unsigned = msgpack.packb(fields, use_bin_type=True)
    sig = signer.sign(SIGN_DOMAIN + unsigned).signature
    return msgpack.packb([*fields, sig], use_bin_type=True)  # type: ignore[no-any-return]


def fields_of(signer: SigningKey, **changes: Any) -> list[Any]:
    """Valid envelope fields for a first record, with some replaced."""
    base: dict[str, Any] = {"version": PROTOCOL_VERSION, "kind": "test.note", "space": space(0),
                            "author": bytes(signer.verify_key), "seq": 1, "prev": None,
                            "ts": START_MS, "body": b"hello"}
    base.update(changes)
    return list(base.values())
