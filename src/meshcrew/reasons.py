"""Machine-readable reasons for rejecting a record, each with a sentence for the person.

Every layer that refuses a record (decoding, the replica's chain rules, the space rules) names one
of these. The value is stable: it is stored in the replica's reject log and shown in ``--json``
output, so values are never renamed, only added.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a record was refused."""

    # Envelope (records.decode_and_verify)
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    NOT_CANONICAL = "not_canonical"
    UNKNOWN_VERSION = "unknown_version"
    BAD_FIELD = "bad_field"
    BAD_KIND = "bad_kind"
    BAD_SEQ = "bad_seq"
    BODY_TOO_LARGE = "body_too_large"
    BAD_SIGNATURE = "bad_signature"
    FROM_FUTURE = "from_future"
    # Chain (store)
    FORK = "fork"
    CHAIN_BROKEN = "chain_broken"
    AUTHOR_FORKED = "author_forked"
    TIME_TRAVEL = "time_travel"

    @property
    def sentence(self) -> str:
        """A sentence that explains the reason to a person."""
        return _SENTENCES.get(self.value, self.value.replace("_", " "))


_SENTENCES: dict[str, str] = {
    "too_large": "The record is larger than the protocol allows.",
    "malformed": "The bytes are not a meshcrew record.",
    "not_canonical": "The record is not in its single canonical encoding.",
    "unknown_version": "The record uses a protocol version this node does not know.",
    "bad_field": "A field of the record has the wrong type or length.",
    "bad_kind": "The record's kind is not a valid kind name.",
    "bad_seq": "The sequence number and previous-record link do not fit together.",
    "body_too_large": "The record's body is larger than the protocol allows.",
    "bad_signature": "The signature does not match the author's key.",
    "from_future": "The record is dated too far in the future; the author's clock may be wrong.",
    "fork": "The author signed two different records at the same place in their chain.",
    "chain_broken": "The record names a previous record that differs from the one held.",
    "author_forked": "The author's chain is frozen because they signed conflicting records.",
    "time_travel": "The record is dated before the author's previous record.",
}
