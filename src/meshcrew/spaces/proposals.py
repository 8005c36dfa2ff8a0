"""Proposals by consent: their outcome as a pure function of the posts a member can read.

A proposal, the answers to it, its amendments and its withdrawal are posts (sealed like every
post, so a non-member learns nothing of them). Every member who holds the same records and keys
works out the same outcome with :func:`decide`. Everything a proposal's outcome depends on is
compared by **signed time** (the ``ts`` of each record), never by the order records arrived in,
so delivery order and duplicates change nothing (property-tested).

Rules
-----

1. **Who decides.** The *electorate* of a proposal at an instant ``t`` is everyone who was a
   member when it was made (at its signed time; the proposer included) and still is at ``t``,
   plus anyone who joined since and has answered by ``t``. So a member who leaves or is
   removed no longer counts (their answer is set aside, an objection included); a member who
   joins while it is open may answer, and then counts like the others, but is not waited for.
   Membership at an instant follows the signed times of the joins, leaves and removals
   (:func:`member_at`).
2. **Answers.** Each member answers ``consent``, ``stand_aside`` (with a reason) or ``object``
   (with a reason), and may change their answer while it is open: their answer at ``t`` is
   their latest (highest seq of their own chain) signed by ``t``. The proposer's proposal is
   their consent; they do not answer (``not_allowed``). Concurrent answers of different
   members need no tie-break: each member has one answer at each instant.
3. **Passing early.** It *passes* at the first instant (from its signed time, before its
   deadline) at which everyone in the electorate has answered and no one objects.
4. **Blocked.** While someone in the electorate objects it is *blocked*; it can still pass if
   the objection is changed or its author leaves before the deadline.
5. **The deadline.** At ``deadline_ms``, if it has not passed: *blocked* (final) if someone
   objects; *passed* if at least the space's quorum of the electorate has answered (the quorum
   in force when it was made, a percentage; 100, the default, means everyone); *expired*
   otherwise. A proposal whose deadline is not after its own signed time is refused
   (``bad_body``).
6. **Amending and withdrawing.** Only the proposer amends (a new title and text; the latest by
   their chain counts) or withdraws (``not_proposer``). Answers signed before the latest
   amendment still count and are shown as answering an earlier version. A withdrawal ends it
   (*withdrawn*); so does the proposer's leaving or removal. At the same instant, a withdrawal
   comes before passing.
7. **Closed.** Once decided (passed, withdrawn, or at the deadline), answers, amendments and
   withdrawals signed later are refused (``proposal_closed``); so are posts that name no
   proposal of the space (``proposal_unknown``). A refused post changes nothing else.

Signed times are the authors' clocks: a member could backdate an answer. What that can change
is bounded (they are a member, and any member sees the signed time next to the time the record
arrived); the receiving node's clock-skew check refuses records dated in the future.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from meshcrew.reasons import Reason
from meshcrew.spaces.kinds import PostKind
from meshcrew.spaces.posts import Amend, Answer, Position, Proposal
from meshcrew.spaces.sealing import OpenedPost, OpenedSpace, newer
from meshcrew.spaces.settings import QUORUM_ALL
from meshcrew.spaces.state import ChangeKind, Outcome, SpaceState, Status

ALL = QUORUM_ALL
"""The default quorum: every member of the electorate answers."""


class ProposalStatus(StrEnum):
    """Where a proposal stands."""

    OPEN = "open"
    """Before its deadline, not decided, and no one objects."""
    BLOCKED = "blocked"
    """Someone objects (final once the deadline has passed)."""
    PASSED = "passed"
    EXPIRED = "expired"
    """The deadline passed with no objection but too few answers for the quorum."""
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class AnswerView:
    """One member's answer that counts."""

    member: bytes
    post: OpenedPost
    position: Position
    reason: str
    before_amendment: bool
    """Signed before the proposal's latest amendment (it answered an earlier version)."""


@dataclass(frozen=True, slots=True)
class ProposalView:
    """A proposal and its outcome."""

    post: OpenedPost
    title: str
    """The latest title (after amendments)."""
    text: str
    deadline_ms: int
    status: ProposalStatus
    decided_ms: int | None
    """When it was decided (passed, withdrawn, or its deadline); None while it is open."""
    quorum: int
    """The quorum in force when it was made (percent of the electorate)."""
    electorate: frozenset[bytes]
    """Who decides, at the decision (or now, while it is open)."""
    answers: Mapping[bytes, AnswerView]
    """The answer of each member of the electorate who has answered (not the proposer)."""
    waiting: tuple[bytes, ...]
    """Members of the electorate who have not answered (sorted by key)."""
    needed: int
    """How many of the electorate must have answered at the deadline (the proposer counts)."""
    amendments: tuple[OpenedPost, ...] = ()
    """Accepted amendments, oldest first."""
    withdrawal: OpenedPost | None = None

    @property
    def id(self) -> bytes:
        """The proposal's record id."""
        return self.post.record_id

    @property
    def proposer(self) -> bytes:
        """Who made it."""
        return self.post.author

    @property
    def decided(self) -> bool:
        """Whether the outcome is final."""
        return self.decided_ms is not None

    @property
    def objections(self) -> tuple[AnswerView, ...]:
        """The answers that object."""
        return tuple(a for a in self.answers.values() if a.position is Position.OBJECT)


@dataclass(frozen=True, slots=True)
class Proposals:
    """Every proposal of a space, and the proposal posts refused by the rules."""

    proposals: tuple[ProposalView, ...]
    """Oldest first (signed time, then id)."""
    refused: Mapping[bytes, Status] = field(default_factory=dict)
    """Answers, amendments, withdrawals (and proposals) the rules refuse, by record id."""

    def get(self, proposal_id: bytes) -> ProposalView | None:
        """The proposal with that id, if any."""
        return next((p for p in self.proposals if p.id == proposal_id), None)


def _refused(reason: Reason, detail: str = "") -> Status:
    return Status(Outcome.REJECTED, reason, detail)


class Timeline:
    """Who is a member at each signed instant, from the space's membership changes."""

    def __init__(self, state: SpaceState) -> None:
        events: dict[bytes, list[tuple[int, int, bool]]] = {}
        for index, change in enumerate(state.changes):
            ts = state.records[change.record_id].ts
            joined = change.change in (ChangeKind.FOUNDED, ChangeKind.JOINED)
            events.setdefault(change.member, []).append((ts, index, joined))
        self._events = {key: sorted(found) for key, found in events.items()}

    def member_at(self, key: bytes, ts: int) -> bool:
        """Whether ``key`` is a member at ``ts``: their last membership change signed at or
        before it (ties in the fold's order) is a founding or a join."""
        state = False
        for at, _, joined in self._events.get(key, ()):
            if at > ts:
                break
            state = joined
        return state

    def changes_between(self, start: int, end: int) -> set[int]:
        """The signed times of the membership changes in ``[start, end)``."""
        return {at for found in self._events.values() for at, _, _ in found
                if start <= at < end}

    def members_at(self, ts: int) -> frozenset[bytes]:
        """Everyone who is a member at ``ts``."""
        return frozenset(k for k in self._events if self.member_at(k, ts))


def member_at(state: SpaceState, key: bytes, ts: int) -> bool:
    """Whether ``key`` is a member of the space at the signed instant ``ts`` (rule 1)."""
    return Timeline(state).member_at(key, ts)


def decide(opened: OpenedSpace, now_ms: int,
           quorum_at: Callable[[OpenedPost], int] | None = None) -> Proposals:
    """Every proposal of the space with its outcome at ``now_ms`` (see the module's rules).

    Args:
        opened: what one member can read of the space.
        now_ms: the current time; it only tells whether a deadline has passed (an outcome at
            or after its deadline no longer depends on it).
        quorum_at: the quorum (percent) in force for a proposal; default :data:`ALL`.
    """
    timeline = Timeline(opened.state)
    refused: dict[bytes, Status] = {}
    proposals: dict[bytes, OpenedPost] = {}
    for post in opened.of_kind(PostKind.PROPOSAL):
        assert isinstance(post.post, Proposal)
        if post.post.deadline_ms <= post.ts:
            refused[post.record_id] = _refused(Reason.BAD_BODY, "its deadline is not after "
                                               "the time it was made")
        else:
            proposals[post.record_id] = post
    related: dict[bytes, list[OpenedPost]] = {pid: [] for pid in proposals}
    for kind in (PostKind.ANSWER, PostKind.AMEND, PostKind.WITHDRAW):
        for post in opened.of_kind(kind):
            target = post.post.to  # type: ignore[union-attr]
            if target not in proposals:
                refused[post.record_id] = _refused(Reason.PROPOSAL_UNKNOWN)
            else:
                related[target].append(post)
    views = []
    for pid, proposal in proposals.items():
        quorum = quorum_at(proposal) if quorum_at is not None else ALL
        view, refusals = _decide_one(proposal, related[pid], timeline, now_ms, quorum)
        views.append(view)
        refused.update(refusals)
    views.sort(key=lambda v: (v.post.ts, v.id))
    return Proposals(tuple(views), refused)


def _decide_one(proposal: OpenedPost, related: list[OpenedPost], timeline: Timeline,
                now_ms: int, quorum: int) -> tuple[ProposalView, dict[bytes, Status]]:
    deciding = _Deciding(proposal, timeline)
    deciding.sort(related)
    status, decided = deciding.first_decision()
    at = decided if decided is not None else min(max(now_ms, deciding.start),
                                                 deciding.deadline - 1)
    electorate, held = deciding.electorate_at(at), deciding.standing(at)
    needed = -(-quorum * len(electorate) // 100)
    objecting = any(post.post.position is Position.OBJECT  # type: ignore[union-attr]
                    for _, post in held.values())
    if status is None and now_ms >= deciding.deadline:
        decided = deciding.deadline
        if objecting:
            status = ProposalStatus.BLOCKED
        elif len(held) + (deciding.proposer in electorate) >= needed:
            status = ProposalStatus.PASSED
        else:
            status = ProposalStatus.EXPIRED
    elif status is None:
        status = ProposalStatus.BLOCKED if objecting else ProposalStatus.OPEN
    deciding.close(decided)
    title, text, amended_at, amendments = deciding.current_text()
    shown = {}
    for key, (at_answer, post) in sorted(held.items()):
        answer = post.post
        assert isinstance(answer, Answer)
        shown[key] = AnswerView(key, post, answer.position, answer.reason,
                                amended_at is not None and at_answer < amended_at)
    withdraws = deciding.withdraws
    withdrawal = (withdraws[0][1] if withdraws and status is ProposalStatus.WITHDRAWN
                  and withdraws[0][0] == decided else None)
    view = ProposalView(
        post=proposal, title=title, text=text, deadline_ms=deciding.deadline, status=status,
        decided_ms=decided, quorum=quorum, electorate=electorate, answers=shown,
        waiting=tuple(sorted(electorate - held.keys() - {deciding.proposer})), needed=needed,
        amendments=amendments, withdrawal=withdrawal)
    return view, deciding.refused


Timed = tuple[int, OpenedPost]
"""A post and the instant it counts from: its signed time, or the proposal's if earlier."""


class _Deciding:
    """The working state of one proposal's decision."""

    def __init__(self, proposal: OpenedPost, timeline: Timeline) -> None:
        body = proposal.post
        assert isinstance(body, Proposal)
        self.proposal = body
        self.start, self.deadline, self.proposer = proposal.ts, body.deadline_ms, proposal.author
        self.timeline = timeline
        self.refused: dict[bytes, Status] = {}
        self.answers: list[Timed] = []
        self.amends: list[Timed] = []
        self.withdraws: list[Timed] = []
        self.base = timeline.members_at(self.start) | {self.proposer}

    def sort(self, related: list[OpenedPost]) -> None:
        """File each related post as an answer, amendment or withdrawal, or refuse it."""
        for post in related:
            at = max(post.ts, self.start)  # signed before the proposal (a clock behind)
            if at >= self.deadline:
                self.refused[post.record_id] = _refused(Reason.PROPOSAL_CLOSED,
                                                        "signed after the deadline")
            elif isinstance(post.post, Answer):
                if post.author == self.proposer:
                    self.refused[post.record_id] = _refused(
                        Reason.NOT_ALLOWED, "the proposal is its proposer's consent")
                else:
                    self.answers.append((at, post))
            elif post.author != self.proposer:
                self.refused[post.record_id] = _refused(Reason.NOT_PROPOSER)
            elif isinstance(post.post, Amend):
                self.amends.append((at, post))
            else:
                self.withdraws.append((at, post))
        self.withdraws.sort(key=lambda item: (item[0], item[1].record_id))
        for _, extra in self.withdraws[1:]:
            self.refused[extra.record_id] = _refused(Reason.PROPOSAL_CLOSED,
                                                     "withdrawn already")

    def answer_at(self, key: bytes, t: int) -> Timed | None:
        """``key``'s answer at ``t``: their latest by chain among those signed by then."""
        best = None
        for at, post in self.answers:
            if post.author == key and at <= t and (best is None or newer(post, best[1])):
                best = (at, post)
        return best

    def electorate_at(self, t: int) -> frozenset[bytes]:
        """Rule 1: members when it was made still members at ``t``, and joiners who answered."""
        answered = {post.author for at, post in self.answers if at <= t}
        return frozenset(k for k in self.base | answered if self.timeline.member_at(k, t))

    def standing(self, t: int) -> dict[bytes, Timed]:
        """The answer at ``t`` of each member of the electorate who has answered."""
        found = {}
        for key in self.electorate_at(t) - {self.proposer}:
            latest = self.answer_at(key, t)
            if latest is not None:
                found[key] = latest
        return found

    def first_decision(self) -> tuple[ProposalStatus | None, int | None]:
        """Rules 3 and 6: the first instant before the deadline at which it is withdrawn or
        passes, if any."""
        withdrawn_at = self.withdraws[0][0] if self.withdraws else None
        instants = sorted({self.start, *(at for at, _ in self.answers),
                           *(at for at, _ in self.withdraws),
                           *self.timeline.changes_between(self.start, self.deadline)})
        for t in instants:
            if ((withdrawn_at is not None and withdrawn_at <= t)
                    or not self.timeline.member_at(self.proposer, t)):
                return ProposalStatus.WITHDRAWN, t
            held = self.standing(t)
            if (len(held) == len(self.electorate_at(t) - {self.proposer})
                    and all(post.post.position is not Position.OBJECT  # type: ignore[union-attr]
                            for _, post in held.values())):
                return ProposalStatus.PASSED, t
        return None, None

    def close(self, decided: int | None) -> None:
        """Rule 7: refuse what was signed after the decision."""
        if decided is None:
            return
        for at, post in (*self.answers, *self.amends, *self.withdraws):
            if at > decided:
                self.refused[post.record_id] = _refused(Reason.PROPOSAL_CLOSED,
                                                        "signed after it was decided")

    def current_text(self) -> tuple[str, str, int | None, tuple[OpenedPost, ...]]:
        """The latest title and text, when the latest amendment counts from, the amendments."""
        kept = sorted((post for _, post in self.amends if post.record_id not in self.refused),
                      key=lambda p: p.seq)
        if not kept:
            return self.proposal.title, self.proposal.text, None, ()
        latest = kept[-1].post
        assert isinstance(latest, Amend)
        return latest.title, latest.text, max(kept[-1].ts, self.start), tuple(kept)
