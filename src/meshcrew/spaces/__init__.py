"""Spaces: crews, dyads and congregations — membership, consent, key epochs and posts.

The whole domain is pure: no I/O, no clock (``now_ms`` is passed in), no randomness that is not
passed in (``rng``). The store gives :func:`fold` the records of a space; the CLI builds
records with the builders and signs them with :func:`meshcrew.records.sign_record`.

Design decisions (the full rules are in ``docs/spaces.md``):

* **State is a function of the set of records.** :func:`fold` puts the records in a canonical
  order that depends only on the set: a topological order over hard dependencies (chain
  predecessor, genesis, and the ids a body names — the invite a join uses, the proposal a
  consent supports, the epoch a post is sealed under, the previous epoch of a rotation and the
  changes it answers), ties broken by lowest record id. A record whose dependency is absent
  *waits*; it is not refused. Then the rules are applied in that order (see
  :mod:`meshcrew.spaces.fold`).
* **No rule reads a clock.** An invite's expiry is compared with the join's own signed ``ts``.
  A removal names the removed member's last counting record (seq and id), so what counts
  never depends on when a replica heard of the removal.
* **Concurrent uses of an invite** resolve by canonical order: the join with the lowest id
  wins a single-use invite on every replica.
* **Removal by consent**: a proposal (counting as its author's consent) names the target's last
  counting record and the other members it was made among (the electorate); it takes effect
  when consents from a majority of the electorate are in, and voids the target's later records.
* **Epochs.** Epoch 0's key is sealed to the founder in the genesis. A ``keys`` record opens
  the next epoch and seals a fresh key to each recipient (X25519 from their ed25519 key). The
  *current* epoch is one made after the latest change, sealed to exactly the current members;
  after any join or departure there is none until someone rotates (the inviter after a join,
  anyone who wants to write after a departure). Concurrent rotations are all valid; the current
  one is the highest number, then lowest id. History links (older keys under the new key)
  exist only if the space lets joiners read history.
* **What a non-member holding every record learns**: the space kind, whether history is
  allowed, member public keys, that invites, joins, leaves, removal proposals and consents and
  key rotations happened (with sizes and signed timestamps), and the size and epoch of each
  post. Names, purposes, rhythms, parent congregations, profiles and every post (including its
  kind) are encrypted.
"""

from meshcrew.spaces.actions import (
    consent_to_removal,
    create_invite,
    create_space,
    drop_carrier,
    invite_code,
    invite_problem,
    join_space,
    leave_space,
    name_carrier,
    propose_removal,
    revoke_invite,
    rotate_keys,
)
from meshcrew.spaces.bodies import Draft
from meshcrew.spaces.fold import fold
from meshcrew.spaces.invites import InviteCode, decode_invite_code, encode_invite_code
from meshcrew.spaces.kinds import PostKind, RecordKind, SpaceKind
from meshcrew.spaces.posts import (
    COMPASS_SCALES,
    Amend,
    Answer,
    Ask,
    CheckIn,
    CrewCard,
    Followup,
    Gathering,
    LookingForCrew,
    Offer,
    Position,
    Post,
    Profile,
    Proposal,
    Reaction,
    Reply,
    Settings,
    Withdraw,
)
from meshcrew.spaces.proposals import ProposalStatus, ProposalView, decide
from meshcrew.spaces.sealing import (
    Keyring,
    OpenedPost,
    OpenedSpace,
    open_meta,
    open_more,
    open_posts,
    seal_post,
    unlock,
    writable_epoch,
)
from meshcrew.spaces.settings import Cycle, Period, Rhythm, SettingsChange, SpaceMeta
from meshcrew.spaces.state import (
    Carrier,
    Epoch,
    Invite,
    Member,
    MemberStatus,
    Outcome,
    Removal,
    SpaceState,
    Status,
)

__all__ = [
    "COMPASS_SCALES", "Amend", "Answer", "Ask", "Carrier", "CheckIn", "CrewCard", "Cycle", "Draft",
    "Epoch", "Followup", "Gathering", "Invite", "InviteCode", "Keyring", "LookingForCrew",
    "Member", "MemberStatus", "Offer", "OpenedPost", "OpenedSpace", "Outcome", "Period",
    "Position", "Post", "PostKind", "Profile", "Proposal", "ProposalStatus", "ProposalView",
    "Reaction", "RecordKind", "Removal", "Reply", "Rhythm", "Settings", "SettingsChange",
    "SpaceKind", "SpaceMeta", "SpaceState", "Status", "Withdraw", "consent_to_removal",
    "create_invite", "create_space", "decide", "decode_invite_code", "drop_carrier",
    "encode_invite_code", "fold", "invite_code", "invite_problem", "join_space", "leave_space",
    "name_carrier", "open_meta", "open_more", "open_posts", "propose_removal", "revoke_invite",
    "rotate_keys", "seal_post", "unlock", "writable_epoch",
]
