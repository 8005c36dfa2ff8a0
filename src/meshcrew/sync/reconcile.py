"""Range-based reconciliation of two frontiers (sync version 2): learn the peer's frontier of a
space by exchanging what differs, not the whole of it.

The items are a space's frontier entries (author key, seq, head id: 72 bytes each, see
:func:`~meshcrew.sync.wire.encode_frontier`), and the ranges are the buckets of a trie over the
author keys, one hexadecimal digit (nibble) per level: the root holds every entry, its 16
children the entries whose key starts with 0, 1, … f, and so on. Both sides cut the key space
the same way, so a bucket is named by its position alone and no bounds are sent.

A side describes a bucket as a **fingerprint** (via its parent's *split*: 16 children, each
empty or a short hash of its entries) or by its **entries** (when it holds at most
:data:`LEAF_ENTRIES` there, or the peer holds none). Every description is answered in the
peer's next message, in order:

- a fingerprint is answered *equal* (same hash, or both empty: the bucket is settled), by the
  answerer's *entries*, or by its own *split* when it holds more than :data:`LEAF_ENTRIES`;
- entries are answered by a *leaf answer*: a bitmap of the entries the answerer holds exactly,
  and its entries in the bucket that are not among them. Both sides then know both sets there.

The initiator (the lower key) starts by describing the root, whose fingerprints are known to
differ (the ``hello`` digests did). Each message answers every open description of the peer's
last one, so the exchange walks down only where the frontiers differ: O(log n) messages, and
bytes in proportion to the authors whose heads differ. It ends when a message opens nothing new.

A side then knows the peer's frontier: its own entries in the buckets found equal, the peer's
in the others. Fingerprints are only :data:`FINGERPRINT_BYTES` long, so the session checks the
result against the digest the peer sent in ``hello`` (BLAKE2b-128 of its full frontier) and
falls back to sending whole frontiers if they disagree (a collision, or a lying peer).

Pure: no I/O. The byte layout is in ``docs/sync.md``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, field
from enum import IntEnum

from meshcrew.errors import LocalProtocolError, RemoteProtocolError
from meshcrew.records import KEY_BYTES, MAX_SEQ
from meshcrew.sync.wire import ENTRY_BYTES, MAX_FRONTIER_ENTRIES, read_varint, varint

FANOUT = 16
"""Children of a bucket: one nibble of the author key per level."""

MAX_DEPTH = 2 * KEY_BYTES
"""Nibbles in a key: a bucket this deep holds one author at most."""

LEAF_ENTRIES = 2
"""A side describes a bucket by its entries when it holds at most this many there."""

FINGERPRINT_BYTES = 4
"""Length of a bucket's fingerprint. Short on purpose: a collision only makes the result
disagree with the ``hello`` digest, and the session then falls back to whole frontiers."""

_KEY_BITS = 8 * KEY_BYTES
_FINGERPRINT_PERSON = b"meshcrew.sync.rf"


class Code(IntEnum):
    """How a fingerprint is answered (two bits each, at the start of a message)."""

    EQUAL = 0
    ENTRIES = 1
    SPLIT = 2


@dataclass(frozen=True, slots=True)
class Bucket:
    """The entries whose author key starts with the ``depth`` nibbles of ``prefix``."""

    depth: int
    prefix: int

    @property
    def low(self) -> int:
        """The smallest author key (as an integer) in the bucket."""
        return self.prefix << (_KEY_BITS - 4 * self.depth)

    @property
    def high(self) -> int:
        """One past the largest author key in the bucket."""
        return (self.prefix + 1) << (_KEY_BITS - 4 * self.depth)

    def child(self, nibble: int) -> Bucket:
        return Bucket(self.depth + 1, (self.prefix << 4) | nibble)


ROOT = Bucket(0, 0)


@dataclass(slots=True)
class _Open:
    """A description this side sent, waiting for the peer's answer."""

    bucket: Bucket
    entries: list[bytes] | None = None
    """The entries sent (an entries description); None for a fingerprint."""


@dataclass(slots=True)
class _Asked:
    """A description the peer sent, to be answered in this side's next message."""

    bucket: Bucket
    fingerprint: bytes | None = None
    """The peer's fingerprint of the bucket (b"" if it holds nothing there)."""
    entries: list[bytes] | None = None
    """The peer's entries (an entries description)."""


@dataclass(slots=True)
class _Reply:
    codes: list[Code] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    opened: list[_Open] = field(default_factory=list)


def fingerprint(entries: list[bytes]) -> bytes:
    """The fingerprint of a non-empty bucket: a short hash of its entries in key order."""
    return hashlib.blake2b(b"".join(entries), digest_size=FINGERPRINT_BYTES,
                           person=_FINGERPRINT_PERSON).digest()


class Reconciler:
    """One side's reconciliation of one space's frontier with the peer's.

    Args:
        blob: this side's frontier, canonically encoded (sorted 72-byte entries).
        initiator: whether this side speaks first (the lower key of the pair).
    """

    def __init__(self, blob: bytes, *, initiator: bool) -> None:
        if len(blob) % ENTRY_BYTES:
            raise LocalProtocolError("a frontier blob is not a whole number of entries")
        self._entries = [blob[at : at + ENTRY_BYTES] for at in range(0, len(blob), ENTRY_BYTES)]
        self._keys = [int.from_bytes(e[:KEY_BYTES], "big") for e in self._entries]
        self.initiator = initiator
        self._open: list[_Open] = []
        # The root is the peer's implicit question: the hello digests already differ.
        self._asked: list[_Asked] = [_Asked(ROOT, fingerprint=None)] if initiator else []
        self._known: list[bytes] = []
        """The peer's entries learned so far (in buckets settled as different)."""
        self._equal: list[bytes] = []
        """This side's entries in buckets settled as equal (the peer's there too)."""
        self._started = initiator
        self._done = False

    def finished(self) -> bool:
        """Whether the exchange is over: the peer's whole frontier is known (:meth:`peer_blob`)
        and nothing is left to answer."""
        return self._done

    # --- the exchange --------------------------------------------------------------------------

    def start(self) -> bytes:
        """The initiator's first message: its description of the root."""
        if not self.initiator or self._open or self._done:
            raise LocalProtocolError("only the initiator starts, once")
        return self._answer()

    def receive(self, payload: bytes) -> bytes | None:
        """Take the peer's message; return this side's answer (None when there is nothing to
        answer: the exchange is over).

        Raises:
            RemoteProtocolError: the message is malformed or does not answer what was asked.
        """
        if self._done:
            raise RemoteProtocolError("The peer sent reconciliation after it was complete.")
        if not self._open and self._started:
            raise RemoteProtocolError("The peer sent reconciliation that answers nothing.")
        if not self._started:  # the responder's first message from the initiator: the root
            self._open = [_Open(ROOT)]
            self._started = True
        self._asked = self._read(payload)
        self._open = []
        if not self._asked:
            self._done = True
            return None
        reply = self._answer()
        if not self._open:
            self._done = True
        return reply

    def peer_blob(self) -> bytes:
        """The peer's frontier, canonically encoded, once :meth:`finished`."""
        if not self._done:
            raise LocalProtocolError("the reconciliation is not complete")
        return b"".join(sorted(self._known + self._equal))

    # --- answering -----------------------------------------------------------------------------

    def _answer(self) -> bytes:
        reply = _Reply()
        for asked in self._asked:
            if asked.entries is not None:
                reply.parts.append(self._leaf_answer(asked.bucket, asked.entries))
            else:
                self._answer_fingerprint(asked, reply)
        self._asked = []
        self._open = reply.opened
        codes = bytearray((len(reply.codes) + 3) // 4)
        for index, code in enumerate(reply.codes):
            codes[index // 4] |= code << (2 * (index % 4))
        return bytes(codes) + b"".join(reply.parts)

    def _answer_fingerprint(self, asked: _Asked, reply: _Reply) -> None:
        bucket = asked.bucket
        mine = self._in(bucket)
        theirs = asked.fingerprint
        if theirs is not None and ((not mine and not theirs)
                                   or (mine and theirs and fingerprint(mine) == theirs)):
            reply.codes.append(Code.EQUAL)
            self._settle_equal(mine)
            return
        if theirs == b"" or not mine or len(mine) <= LEAF_ENTRIES or bucket.depth >= MAX_DEPTH:
            reply.codes.append(Code.ENTRIES)
            reply.parts.append(varint(len(mine)) + b"".join(mine))
            reply.opened.append(_Open(bucket, mine))
            return
        reply.codes.append(Code.SPLIT)
        present = 0
        prints = []
        for nibble in range(FANOUT):
            child = bucket.child(nibble)
            entries = self._in(child)
            if entries:
                present |= 1 << nibble
                prints.append(fingerprint(entries))
            reply.opened.append(_Open(child))
        reply.parts.append(present.to_bytes(2, "big") + b"".join(prints))

    def _leaf_answer(self, bucket: Bucket, theirs: list[bytes]) -> bytes:
        """Which of the peer's entries this side holds exactly, and its others there."""
        mine = self._in(bucket)
        held = set(mine)
        bits = bytearray((len(theirs) + 7) // 8)
        for index, entry in enumerate(theirs):
            if entry in held:
                bits[index // 8] |= 1 << (index % 8)
        shared = set(theirs)
        extra = [e for e in mine if e not in shared]
        self._learn(theirs)
        return bytes(bits) + varint(len(extra)) + b"".join(extra)

    # --- reading the peer's message ------------------------------------------------------------

    def _read(self, payload: bytes) -> list[_Asked]:
        """Parse the answers to this side's open descriptions; return the peer's new ones."""
        fingerprints = [o for o in self._open if o.entries is None]
        at = (len(fingerprints) + 3) // 4
        if len(payload) < at:
            raise RemoteProtocolError("A reconciliation message is cut short.")
        codes = []
        for index in range(len(fingerprints)):
            code = (payload[index // 4] >> (2 * (index % 4))) & 3
            if code > Code.SPLIT:
                raise RemoteProtocolError("A reconciliation message has an unknown code.")
            codes.append(Code(code))
        if len(fingerprints) % 4 and payload[at - 1] >> (2 * (len(fingerprints) % 4)):
            raise RemoteProtocolError("A reconciliation message has stray code bits.")
        code_of = iter(codes)
        asked: list[_Asked] = []
        for opened in self._open:
            if opened.entries is not None:
                at = self._read_leaf_answer(payload, at, opened.bucket, opened.entries)
                continue
            code = next(code_of)
            mine = self._in(opened.bucket)
            if code is Code.EQUAL:
                if opened.bucket == ROOT and not self.initiator:
                    raise RemoteProtocolError("The peer found equal what its digest says differs.")
                self._settle_equal(mine)
            elif code is Code.ENTRIES:
                entries, at = self._read_entries(payload, at, opened.bucket)
                asked.append(_Asked(opened.bucket, entries=entries))
            else:
                if opened.bucket.depth >= MAX_DEPTH:
                    raise RemoteProtocolError("The peer split a bucket that cannot be split.")
                if at + 2 > len(payload):
                    raise RemoteProtocolError("A reconciliation message is cut short.")
                present = int.from_bytes(payload[at : at + 2], "big")
                at += 2
                if not present:
                    raise RemoteProtocolError("The peer split a bucket it holds nothing in.")
                for nibble in range(FANOUT):
                    child = opened.bucket.child(nibble)
                    if present >> nibble & 1:
                        if at + FINGERPRINT_BYTES > len(payload):
                            raise RemoteProtocolError("A reconciliation message is cut short.")
                        asked.append(_Asked(child, payload[at : at + FINGERPRINT_BYTES]))
                        at += FINGERPRINT_BYTES
                    else:
                        asked.append(_Asked(child, b""))
        if at != len(payload):
            raise RemoteProtocolError("A reconciliation message has bytes left over.")
        return asked

    def _read_entries(self, payload: bytes, at: int, bucket: Bucket) -> tuple[list[bytes], int]:
        count, at = read_varint(payload, at)
        end = at + count * ENTRY_BYTES
        if count > MAX_FRONTIER_ENTRIES or end > len(payload):
            raise RemoteProtocolError("A reconciliation message is cut short.")
        entries = [payload[i : i + ENTRY_BYTES] for i in range(at, end, ENTRY_BYTES)]
        _check_entries(entries, bucket)
        return entries, end

    def _read_leaf_answer(self, payload: bytes, at: int, bucket: Bucket,
                          sent: list[bytes]) -> int:
        width = (len(sent) + 7) // 8
        if at + width > len(payload):
            raise RemoteProtocolError("A reconciliation message is cut short.")
        bits = payload[at : at + width]
        at += width
        if len(sent) % 8 and bits[-1] >> (len(sent) % 8):
            raise RemoteProtocolError("A reconciliation message has stray bitmap bits.")
        held = [e for i, e in enumerate(sent) if bits[i // 8] >> (i % 8) & 1]
        extra, at = self._read_entries(payload, at, bucket)
        if {e[:KEY_BYTES] for e in held} & {e[:KEY_BYTES] for e in extra}:
            raise RemoteProtocolError("The peer named two heads of one author.")
        self._learn(held + extra)
        return at

    # --- what is known -------------------------------------------------------------------------

    def _settle_equal(self, mine: list[bytes]) -> None:
        self._equal.extend(mine)

    def _learn(self, entries: list[bytes]) -> None:
        self._known.extend(entries)
        if len(self._known) > MAX_FRONTIER_ENTRIES:
            raise RemoteProtocolError(f"A frontier has more than {MAX_FRONTIER_ENTRIES} authors.")

    def _in(self, bucket: Bucket) -> list[bytes]:
        """This side's entries in a bucket, in key order."""
        low = bisect_left(self._keys, bucket.low)
        high = bisect_left(self._keys, bucket.high, low)
        return self._entries[low:high]


def _check_entries(entries: list[bytes], bucket: Bucket) -> None:
    """The peer's entries of a bucket: strictly increasing authors, all in the bucket, seqs in
    range."""
    previous = -1
    for entry in entries:
        key = int.from_bytes(entry[:KEY_BYTES], "big")
        if key <= previous or not bucket.low <= key < bucket.high:
            raise RemoteProtocolError("A reconciliation message lists entries out of place.")
        seq = int.from_bytes(entry[KEY_BYTES : KEY_BYTES + 8], "big")
        if not 1 <= seq < MAX_SEQ:
            raise RemoteProtocolError("A frontier entry has a seq out of range.")
        previous = key
