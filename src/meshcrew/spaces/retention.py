"""Retention: which posts have expired, as a pure function of what a member reads and a clock.

A space keeps check-ins for ``keep_checkins`` rhythm cycles and the other conversation posts
(replies, reactions, asks, offers, follow-ups, gatherings) for ``keep_posts`` cycles; 0, the
default, keeps them forever (settings, see :mod:`meshcrew.spaces.settings`).

1. **When.** A post written (signed ``ts``) in cycle *c* of the space's rhythm expires at the
   start of cycle *c + N*, N being the retention of its kind: it is kept for the rest of its
   own cycle and N - 1 whole cycles after it. The settings in force now decide: shortening the
   retention expires older posts at once; lengthening it cannot bring back what was deleted.
2. **What follows what it answers.** A reply, reaction or follow-up expires no later than the
   post it answers (the conversation around a check-in goes with it), and at once if that post
   is a husk already.
3. **What never expires.** Profiles, proposals and answers, amendments, withdrawals, settings
   changes, crew cards and "looking for a crew": they are the crew's rule book and who is who
   (a settings change is checked against the proposal it names), and each is small.
4. **What the chain needs.** A post is deleted from the disk only once its author has a later
   accepted record in the space (``heads`` are kept whole): a receiver checks a chain from its
   newest record down, and the newest must be whole to be checked. The author's own node
   writes one when its head is due (see :meth:`meshcrew.service.Member.expire_due`).
5. **Leaving with one's posts.** A member who leaves may choose that their past check-ins
   and conversation posts expire at once (``LeaveBody.expire_posts``): every member's node
   deletes those signed before the leave as soon as it holds the leave (their replies to
   others go too, and others' replies to them follow rule 2). By default they stay, under the
   space's retention; removed members have no such choice (their posts follow the setting).
   Leaving from one laptop takes the posts of the member's other devices too, up to the last
   record of each that the leave names (:func:`withdrawn`); but rule 4 keeps each device's
   newest record whole, and a device cannot write after its member left, so a device whose
   newest record is a post keeps that one post (a device linked while the leave was written,
   which the leave does not name, keeps its posts).

The reader's clock enters only here, as in a proposal's deadline: every member's node applies
the rule by its own clock, so they delete within the clock skew of one another. What is left of
an expired post is its husk (:func:`husk_stub`, :func:`meshcrew.records.encode_husk`); the
space rules read a husk like the post it was, so the state of the space does not change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from meshcrew.crypto import BLOB_OVERHEAD
from meshcrew.spaces.bodies import LeaveBody, SealedBody, encode_body
from meshcrew.spaces.kinds import PostKind
from meshcrew.spaces.sealing import OpenedPost, OpenedSpace
from meshcrew.spaces.settings import KEEP_FOREVER, Rhythm, SpaceMeta
from meshcrew.spaces.state import ChangeKind, SpaceState

CONVERSATION = frozenset({PostKind.REPLY, PostKind.REACTION, PostKind.ASK, PostKind.OFFER,
                          PostKind.FOLLOWUP, PostKind.GATHERING})
"""The "other posts" that ``keep_posts`` applies to."""


@dataclass(frozen=True, slots=True)
class Expiry:
    """What has expired at an instant, and when the next post will."""

    due: frozenset[bytes]
    """Posts expired and deletable now (their authors have written since)."""
    waiting: frozenset[bytes]
    """Posts expired but kept whole for now: their author's newest record (rule 4)."""
    next_ms: int | None
    """When the next post of those still kept expires (None: none will, as things stand)."""


def expires_at(post: OpenedPost, rhythm: Rhythm, cycles: int) -> int | None:
    """When a post written at ``post.ts`` expires if kept ``cycles`` cycles (None: never)."""
    if cycles == KEEP_FOREVER:
        return None
    return rhythm.cycle_at(post.ts).start_ms + cycles * rhythm.length_ms


def expiry(opened: OpenedSpace, meta: SpaceMeta, now_ms: int,
           heads: Collection[bytes]) -> Expiry:
    """Which posts of ``opened`` have expired at ``now_ms`` under the settings ``meta``.

    Args:
        opened: the posts this member reads.
        meta: the space's settings now (retention and rhythm).
        now_ms: the reader's clock.
        heads: the ids of each author's newest accepted record in the space.
    """
    taken = withdrawn(opened.state)
    if meta.keep_checkins == KEEP_FOREVER and meta.keep_posts == KEEP_FOREVER and not taken:
        return Expiry(frozenset(), frozenset(), None)
    by_id = {post.record_id: post for post in opened.posts}
    found: dict[bytes, int | None] = {}

    def when(post: OpenedPost, depth: int = 0) -> int | None:
        if post.record_id in found:
            return found[post.record_id]
        found[post.record_id] = None  # a cycle of answers (forged) ends here
        if post.kind is PostKind.CHECKIN:
            at = expires_at(post, meta.rhythm, meta.keep_checkins)
        elif post.kind in CONVERSATION:
            at = expires_at(post, meta.rhythm, meta.keep_posts)
        else:
            return None
        if post.seq < taken.get(post.signer, 0):
            at = 0  # its author left and took their posts with them (rule 5)
        to = getattr(post.post, "to", b"")
        if to in opened.expired:
            at = 0  # what it answers has expired already (here, or on the node it came from)
        target = by_id.get(to)
        if target is not None and depth < 64:
            theirs = when(target, depth + 1)
            if theirs is not None:
                at = theirs if at is None else min(at, theirs)
        found[post.record_id] = at
        return at

    due: set[bytes] = set()
    waiting: set[bytes] = set()
    upcoming: list[int] = []
    for post in opened.posts:
        at = when(post)
        if at is None:
            continue
        if at > now_ms:
            upcoming.append(at)
        elif post.record_id in heads:
            waiting.add(post.record_id)
        else:
            due.add(post.record_id)
    return Expiry(frozenset(due), frozenset(waiting), min(upcoming, default=None))


def withdrawn(state: SpaceState) -> dict[bytes, int]:
    """Per chain of a member who left taking their posts with them: the seq below which its
    posts expire now (rule 5). Seqs compare only within one chain: for the device that signed
    the leave, its seq; for each other device of the member that the leave names (its field
    ``d``: each device's last counting record, the member key's too when a device leaves), one
    past that record. A named key that is not a device of the leaver's member, or a record that
    is not that device's accepted record at that seq, is ignored (the fold orders by ``d`` but
    does not check it; here it would delete someone else's posts)."""
    taken: dict[bytes, int] = {}
    for change in state.changes:
        body = state.bodies.get(change.record_id)
        if change.change is ChangeKind.LEFT and isinstance(body, LeaveBody) and body.expire_posts:
            leave = state.records[change.record_id]
            taken[leave.author] = max(taken.get(leave.author, 0), leave.seq)
            member = state.member_of(leave.author)
            for device, seq, last_id in body.devices:
                named = state.records.get(last_id)
                status = state.status(last_id)
                if (device != leave.author and member is not None
                        and state.member_of(device) == member and named is not None
                        and named.author == device and named.seq == seq
                        and status is not None and status.accepted):
                    taken[device] = max(taken.get(device, 0), seq + 1)
    return taken


def husk_stub(body: SealedBody) -> bytes:
    """The body a husk keeps of an expired post: its epoch, and a ciphertext of zeros (the
    space rules check only that it could be one)."""
    return encode_body(SealedBody(body.epoch, bytes(BLOB_OVERHEAD)))
