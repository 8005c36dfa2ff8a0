"""Names: kinds of space, kinds of record, kinds of post, and which posts belong where."""

from __future__ import annotations

from enum import StrEnum


class SpaceKind(StrEnum):
    """The scale a space works at (see DESIGN §1)."""

    CREW = "crew"
    """A working group: 3 to 8 is typical; at most 64 members."""
    DYAD = "dyad"
    """A pair: exactly two members once complete."""
    CONGREGATION = "congregation"
    """A container where crews form: up to 500 members."""

    @property
    def max_members(self) -> int:
        """The most members a space of this kind admits at once."""
        return _MAX_MEMBERS[self.value]

    @property
    def post_kinds(self) -> frozenset[PostKind]:
        """The kinds of post this space accepts."""
        if self is SpaceKind.CONGREGATION:
            return _EVERYWHERE | _CONGREGATION_ONLY
        return _EVERYWHERE | _SMALL_ONLY


_MAX_MEMBERS = {"crew": 64, "dyad": 2, "congregation": 500}

MAX_MEMBERS_ANY = 500
"""The largest member count of any kind (bounds the size of a key rotation)."""

MAX_CARRIERS = 8
"""The most carriers a space names at once (fold rule 10)."""


class RecordKind(StrEnum):
    """The envelope kinds the space rules read (``Record.kind``).

    Every post (check-in, reply, ...) travels as ``SEALED``: its own kind is inside the
    ciphertext, so a non-member cannot tell a check-in from a reaction.
    """

    GENESIS = "genesis"
    INVITE = "invite"
    JOIN = "join"
    LEAVE = "leave"
    REMOVE = "remove"
    CONSENT = "consent"
    KEYS = "keys"
    SEALED = "sealed"
    CARRIER = "carrier"
    """Names (or drops) a carrier: a node that holds and serves the space's sealed records."""
    REVOKE = "revoke"
    """Revokes an invite: it admits no one more."""
    DEVICE = "device"
    """A device's certificate: its first record in the space, carrying its member's signature."""
    UNLINK = "unlink"
    """Revokes a device of a member (carries the member's signature)."""


class PostKind(StrEnum):
    """The kinds of post carried encrypted inside a ``sealed`` record."""

    PROFILE = "profile"
    CHECKIN = "checkin"
    REPLY = "reply"
    REACTION = "reaction"
    ASK = "ask"
    OFFER = "offer"
    FOLLOWUP = "followup"
    GATHERING = "gathering"
    LOOKING_FOR_CREW = "looking_for_crew"
    CREW_CARD = "crew_card"
    PROPOSAL = "proposal"
    """A decision the members take by consent (see :mod:`meshcrew.spaces.proposals`)."""
    ANSWER = "answer"
    """A member's answer to a proposal: consent, stand aside or object."""
    AMEND = "amend"
    """The proposer's new title and text for their proposal."""
    WITHDRAW = "withdraw"
    """The proposer takes their proposal back."""
    SETTINGS = "settings"
    """A change of the space's name, purpose, rhythm or quorum (see
    :mod:`meshcrew.spaces.editing`)."""


_EVERYWHERE = frozenset({PostKind.PROFILE, PostKind.REPLY, PostKind.REACTION, PostKind.ASK,
                         PostKind.OFFER, PostKind.FOLLOWUP, PostKind.PROPOSAL, PostKind.ANSWER,
                         PostKind.AMEND, PostKind.WITHDRAW, PostKind.SETTINGS})
_SMALL_ONLY = frozenset({PostKind.CHECKIN})
_CONGREGATION_ONLY = frozenset({PostKind.GATHERING, PostKind.LOOKING_FOR_CREW,
                                PostKind.CREW_CARD})
