"""Editing a space: its settings as a pure function of the posts a member can read.

A space's name, purpose, rhythm and quorum start as its genesis set them (encrypted under its
meta key). They change by ``settings`` posts, sealed like every post, applied in order of their
signed time (then id):

1. **By consent.** In a crew or dyad, a ``settings`` post counts only if it names a proposal
   (``by``) that proposed exactly that change and had **passed** when the post was signed (its
   outcome at the post's signed time; see :mod:`meshcrew.spaces.proposals`). Otherwise it is
   refused (``not_consented``). So the rule book stays "by consent": a member cannot rename the
   crew alone.
2. **In a congregation** any member may change the settings with a post that names no
   proposal, unless the congregation has decided otherwise: the ``edit_by_proposal`` setting,
   once on, makes it follow rule 1 (turning it off again then takes a passed proposal too).
   A post that names a proposal follows rule 1 in any space.
3. **Once per proposal.** The first ``settings`` post that carries out a proposal makes the
   change; a later one naming the same proposal (two members carrying it out at once) changes
   nothing more, and is not refused.
4. **The quorum of a proposal** is the one in force when the proposal was made: the settings
   as changed by the posts signed strictly before it. A change never depends on itself: a post
   counts only if signed at or after its proposal passed, which is at or after the proposal.
5. **Without history.** A member who joined a space that does not let joiners read its
   history cannot read the changes made before they joined. Each key rotation in such a space
   carries the settings as its author knows them (sealed under the new key); the member starts
   from those of the rotations they can read that include the latest change, and takes a later
   change that names a proposal they cannot read on the word of the members who can.

A refused post changes nothing else. Every member who holds the same posts works out the same
settings and the same history of changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshcrew.reasons import Reason
from meshcrew.records import RecordError
from meshcrew.spaces.kinds import PostKind, SpaceKind
from meshcrew.spaces.posts import Proposal, Settings
from meshcrew.spaces.proposals import ProposalStatus, ProposalView, decide
from meshcrew.spaces.sealing import OpenedPost, OpenedSpace
from meshcrew.spaces.settings import SettingsChange, SettingsSnapshot, SpaceMeta
from meshcrew.spaces.state import Outcome, Status


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """One change of the settings that counted."""

    post: OpenedPost
    change: SettingsChange
    by: bytes | None
    """The proposal it carried out (None: a congregation member's own change)."""
    before: SpaceMeta
    after: SpaceMeta


@dataclass(frozen=True, slots=True)
class SettingsHistory:
    """A space's settings now, how they came to be, and the ``settings`` posts refused."""

    genesis: SpaceMeta
    applied: tuple[AppliedChange, ...] = ()
    """Oldest first (signed time, then id)."""
    refused: Mapping[bytes, Status] = field(default_factory=dict)
    carried_out: frozenset[bytes] = frozenset()
    """The proposals whose change has been made."""

    @property
    def current(self) -> SpaceMeta:
        """The settings after every change that counted."""
        return self.applied[-1].after if self.applied else self.genesis

    def before(self, ts: int) -> SpaceMeta:
        """The settings as changed by the posts signed strictly before ``ts``."""
        meta = self.genesis
        for applied in self.applied:
            if applied.post.ts >= ts:
                break
            meta = applied.after
        return meta

    def quorum_of(self, proposal: OpenedPost) -> int:
        """Rule 4: the quorum in force when ``proposal`` was made."""
        return self.before(proposal.ts).quorum


def _refused(reason: Reason, detail: str) -> Status:
    return Status(Outcome.REJECTED, reason, detail)


def settings_history(opened: OpenedSpace, genesis: SpaceMeta, *,
                     start: SettingsSnapshot | None = None) -> SettingsHistory:
    """The settings of the space whose posts ``opened`` holds, from ``genesis`` on.

    Args:
        opened: what one member can read of the space.
        genesis: the settings its genesis holds.
        start: for a member who cannot read the space's history (see
            :func:`meshcrew.spaces.sealing.settings_start`): the settings a rotation they can
            read carried, and the change they include. The member starts from them, takes
            the changes after them, and takes a change that names a proposal they cannot read
            (it was made before they joined) on the word of the members who could.
    """
    posts = sorted(opened.of_kind(PostKind.SETTINGS), key=lambda p: (p.ts, p.record_id))
    if start is not None:
        genesis = start.meta
        boundary = (start.ts, start.last or b"")
        posts = [p for p in posts if (p.ts, p.record_id) > boundary]
    history = SettingsHistory(genesis)
    if not posts:
        return history
    applied: list[AppliedChange] = []
    refused: dict[bytes, Status] = {}
    carried: set[bytes] = set()
    by_consent_always = opened.state.kind is not SpaceKind.CONGREGATION
    for post in posts:
        body = post.post
        assert isinstance(body, Settings)
        change = body.settings_change
        meta = applied[-1].after if applied else genesis
        by = body.by or None
        if by is None and (by_consent_always or meta.edit_by_proposal):
            refused[post.record_id] = _refused(Reason.NOT_CONSENTED, "it names no proposal")
            continue
        if by is not None and by not in opened.locked:
            sofar = SettingsHistory(genesis, tuple(applied))
            proposal = decide(opened, post.ts, sofar.quorum_of).get(by)
            problem = _consent_problem(proposal, change, post.ts)
            if problem is not None:
                refused[post.record_id] = _refused(Reason.NOT_CONSENTED, problem)
                continue
        if by is not None:
            if by in carried:
                continue  # rule 3: carried out already
            carried.add(by)
        try:
            after = change.apply(meta)
        except RecordError as exc:  # pragma: no cover - the post's own checks ran the same
            refused[post.record_id] = _refused(exc.reason, exc.detail)
            continue
        applied.append(AppliedChange(post, change, by, meta, after))
    return SettingsHistory(genesis, tuple(applied), refused, frozenset(carried))


def _consent_problem(proposal: ProposalView | None, change: SettingsChange,
                     ts: int) -> str | None:
    """Why a settings post cannot carry out ``proposal`` (rule 1), or None if it can."""
    if proposal is None:
        return "the proposal it names is not one of this space"
    body = proposal.post.post
    assert isinstance(body, Proposal)
    if body.settings_change != change:
        return "the proposal it names proposed another change"
    if proposal.status is not ProposalStatus.PASSED or (proposal.decided_ms or 0) > ts:
        return f"the proposal it names had not passed when it was signed ({proposal.status})"
    return None
