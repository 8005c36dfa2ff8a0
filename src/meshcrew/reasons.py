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
    PENDING_FULL = "pending_full"
    HUSK_CONFLICT = "husk_conflict"
    # Space rules (spaces.fold, spaces.sealing)
    NOT_MEMBER = "not_member"
    REMOVED_MEMBER = "removed_member"
    ALREADY_MEMBER = "already_member"
    SPACE_FULL = "space_full"
    INVITE_UNKNOWN = "invite_unknown"
    INVITE_EXPIRED = "invite_expired"
    INVITE_EXHAUSTED = "invite_exhausted"
    INVITE_BAD_PROOF = "invite_bad_proof"
    INVITE_REVOKED = "invite_revoked"
    JOIN_FORGED = "join_forged"
    CONSENT_INSUFFICIENT = "consent_insufficient"
    NOT_ALLOWED = "not_allowed"
    BAD_REFERENCE = "bad_reference"
    BAD_EPOCH = "bad_epoch"
    STALE_EPOCH = "stale_epoch"
    BAD_BODY = "bad_body"
    UNREADABLE = "unreadable"
    # A member's devices (spaces.fold, rules 12 and 13)
    DEVICE_UNPROVEN = "device_unproven"
    DEVICE_REVOKED = "device_revoked"
    DEVICE_OF_REMOVED = "device_of_removed"
    DEVICE_CLAIMED = "device_claimed"
    # Proposals (spaces.proposals)
    PROPOSAL_UNKNOWN = "proposal_unknown"
    PROPOSAL_CLOSED = "proposal_closed"
    NOT_PROPOSER = "not_proposer"
    NOT_CONSENTED = "not_consented"
    # Crew cards (spaces.cards)
    CARD_UNPROVEN = "card_unproven"
    # Carriers (node.carrying)
    NOT_CARRIED = "not_carried"
    OVER_QUOTA = "over_quota"

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
    "pending_full": "Too many records of this author already wait for a missing earlier record; "
                    "this one was dropped and will be fetched again later.",
    "husk_conflict": "The record and the husk of an expired post held at its place (or just "
                     "before it) in the author's chain disagree; a husk proves no fork, so "
                     "nothing else changes.",
    "not_member": "The author is not a member of this space (never joined, or has left).",
    "removed_member": "The author was removed from this space by consent; nothing they wrote "
                      "after their last counting record is accepted.",
    "already_member": "The author is already a member of this space.",
    "space_full": "The space already has as many members as its kind allows.",
    "invite_unknown": "The join names no valid invite of this space.",
    "invite_expired": "The invite had expired when the join was signed, or before a member "
                      "let the joiner in.",
    "invite_exhausted": "The invite has already been used as many times as it allows.",
    "invite_bad_proof": "The join does not prove possession of the invite's secret.",
    "invite_revoked": "The invite was revoked by a member, or its maker was removed from the "
                      "space, so it admits no one.",
    "join_forged": "The join was made for a different key than the one that signed it.",
    "consent_insufficient": "The removal lacks the consent of a majority of the other members.",
    "not_allowed": "The author may not do this here (for example consent to their own removal).",
    "bad_reference": "The record names a record that is missing, of the wrong kind or refused.",
    "bad_epoch": "The key rotation does not follow the space's epochs or seals keys to "
                 "non-members.",
    "stale_epoch": "The body is encrypted with an epoch key its author had already replaced "
                   "or was never given.",
    "bad_body": "The record's body is not valid for its kind (a field is missing, out of range "
                "or too long).",
    "unreadable": "The body does not decrypt with the key of the epoch it names.",
    "device_unproven": "The device certificate (or its revocation) is not signed by the member "
                       "key it names, so it cannot be shown to come from that member.",
    "device_revoked": "The author is a device its member revoked; nothing it wrote after the "
                      "record the revocation named counts.",
    "device_of_removed": "The author is a device of a member who was removed from this space "
                         "by consent; every device of a removed member is out with them.",
    "device_claimed": "The key already belongs to a member (as their key or one of their "
                      "devices); one key belongs to one member.",
    "proposal_unknown": "It answers, amends or withdraws a proposal this space does not hold.",
    "proposal_closed": "The proposal had already been decided, withdrawn or reached its "
                       "deadline when this was signed.",
    "not_proposer": "Only the member who made a proposal may amend or withdraw it.",
    "not_consented": "The settings of this space change only by a proposal that passed, and "
                     "this change names none (or one that had not passed, or proposed "
                     "something else).",
    "card_unproven": "The crew card is not signed with the crew's card key, so it cannot be "
                     "shown to come from a member of that crew.",
    "not_carried": "This node is a carrier, and the record's space has not named it (or has "
                   "dropped it).",
    "over_quota": "The carrier's disk quota (for this space, or in all) is full.",
}
