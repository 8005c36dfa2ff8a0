"""Derived views: what the TUI and CLI show, as pure functions of what a member can read.

Every view takes an :class:`~meshcrew.spaces.sealing.OpenedSpace` (the state plus the posts the
member can read) and, where time matters, ``now_ms`` and the space's rhythm. Ties are broken by
record id, so two members who read the same posts see the same views.

"Latest" for things a member keeps up to date about themself (profile, looking for a crew) means
highest seq in their own chain. For things anyone may post about a shared subject (a crew's
card, posted by any of its members) it means the highest signed ``ts``, then the highest record
id.

A check-in belongs to the cycle that contains its record's signed ``ts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from meshcrew.identity import fingerprint
from meshcrew.spaces.cards import unproven_cards
from meshcrew.spaces.kinds import PostKind
from meshcrew.spaces.posts import Ask, CheckIn, CrewCard, Followup, Gathering, LookingForCrew
from meshcrew.spaces.posts import Profile as ProfilePost
from meshcrew.spaces.sealing import OpenedPost, OpenedSpace, newer
from meshcrew.spaces.settings import Cycle, Rhythm
from meshcrew.spaces.state import MemberStatus

_STATUS_ORDER = {MemberStatus.ACTIVE: 0, MemberStatus.LEFT: 1, MemberStatus.REMOVED: 2}


def _chrono(post: OpenedPost) -> tuple[int, bytes]:
    return post.ts, post.record_id


def _latest_own(opened: OpenedSpace, kind: PostKind) -> dict[bytes, OpenedPost]:
    """Per author: their post of ``kind`` with the highest seq."""
    latest: dict[bytes, OpenedPost] = {}
    for post in opened.of_kind(kind):
        held = latest.get(post.author)
        if held is None or newer(post, held):
            latest[post.author] = post
    return latest


@dataclass(frozen=True, slots=True)
class MemberView:
    """One row of the member list."""

    key: bytes
    name: str
    """Their latest profile name here, else their fingerprint."""
    bio: str
    status: MemberStatus
    joined_ts: int
    invited_by: bytes | None
    is_founder: bool


def member_views(opened: OpenedSpace) -> list[MemberView]:
    """Everyone who is or was a member: current members first, then by name."""
    profiles = _latest_own(opened, PostKind.PROFILE)
    rows = []
    for key, member in opened.state.members.items():
        profile = profiles.get(key)
        post = profile.post if profile is not None else None
        name, bio = ((post.name, post.bio) if isinstance(post, ProfilePost)
                     else (fingerprint(key), ""))
        rows.append(MemberView(
            key=key, name=name, bio=bio, status=member.status, joined_ts=member.joined_ts,
            invited_by=member.invited_by, is_founder=key == opened.state.founder))
    rows.sort(key=lambda r: (_STATUS_ORDER[r.status], r.name.casefold(), r.key))
    return rows


def display_name(opened: OpenedSpace, key: bytes) -> str:
    """A member's latest profile name here, else their fingerprint."""
    post = _latest_own(opened, PostKind.PROFILE).get(key)
    return post.post.name if post is not None and isinstance(post.post, ProfilePost) \
        else fingerprint(key)


@dataclass(frozen=True, slots=True)
class CycleView:
    """The check-ins of one rhythm cycle."""

    cycle: Cycle
    checkins: Mapping[bytes, OpenedPost]
    """Current member → their latest check-in of the cycle."""
    missing: tuple[bytes, ...]
    """Current members who have not checked in this cycle (sorted by key)."""


def checkin_cycle(opened: OpenedSpace, rhythm: Rhythm, now_ms: int) -> CycleView:
    """Who has checked in during the cycle containing ``now_ms``, and who has not yet."""
    return checkin_cycle_of(opened.of_kind(PostKind.CHECKIN), opened.state.active, rhythm,
                            now_ms)


def checkin_cycle_of(checkins: Iterable[OpenedPost], active: AbstractSet[bytes], rhythm: Rhythm,
                     now_ms: int) -> CycleView:
    """:func:`checkin_cycle` given the check-ins (any that may fall in the cycle) and the
    current members."""
    cycle = rhythm.cycle_at(now_ms)
    latest: dict[bytes, OpenedPost] = {}
    for post in checkins:
        if post.author in active and post.ts in cycle:
            held = latest.get(post.author)
            if held is None or _chrono(post) > _chrono(held):
                latest[post.author] = post
    missing = tuple(sorted(active - latest.keys()))
    return CycleView(cycle, dict(sorted(latest.items())), missing)


def energy_series(opened: OpenedSpace) -> dict[bytes, list[tuple[int, int]]]:
    """Per author: ``(ts, energy)`` of each check-in, oldest first (for sparklines)."""
    series: dict[bytes, list[tuple[int, int]]] = {}
    for post in sorted(opened.of_kind(PostKind.CHECKIN), key=_chrono):
        assert isinstance(post.post, CheckIn)
        series.setdefault(post.author, []).append((post.ts, post.post.energy))
    return dict(sorted(series.items()))


def compass_series(opened: OpenedSpace, author: bytes) -> dict[str, list[tuple[int, int]]]:
    """One member's compass scores over time: scale key → ``(ts, score)``, oldest first."""
    series: dict[str, list[tuple[int, int]]] = {}
    for post in sorted(opened.of_kind(PostKind.CHECKIN), key=_chrono):
        if post.author == author:
            assert isinstance(post.post, CheckIn)
            for key, score in post.post.compass.items():
                series.setdefault(key, []).append((post.ts, score))
    return series


@dataclass(frozen=True, slots=True)
class Thread:
    """What was said in answer to one post."""

    replies: tuple[OpenedPost, ...]
    reactions: tuple[OpenedPost, ...]
    followups: tuple[OpenedPost, ...]


def thread(opened: OpenedSpace, record_id: bytes) -> Thread:
    """The replies, reactions and follow-ups to a post, oldest first."""
    found: dict[PostKind, list[OpenedPost]] = {PostKind.REPLY: [], PostKind.REACTION: [],
                                               PostKind.FOLLOWUP: []}
    for post in opened.posts:
        if post.kind in found and getattr(post.post, "to", None) == record_id:
            found[post.kind].append(post)
    return Thread(*(tuple(sorted(found[k], key=_chrono)) for k in
                    (PostKind.REPLY, PostKind.REACTION, PostKind.FOLLOWUP)))


@dataclass(frozen=True, slots=True)
class BoardItem:
    """An ask (an ``ask`` post or a check-in's ask) or an offer, with its follow-ups."""

    post: OpenedPost
    title: str
    followups: tuple[OpenedPost, ...]
    closed: bool
    """A follow-up by the post's own author closed it."""


def board(opened: OpenedSpace) -> list[BoardItem]:
    """Every ask and offer with its follow-ups, oldest first."""
    followups: dict[bytes, list[OpenedPost]] = {}
    for post in opened.of_kind(PostKind.FOLLOWUP):
        assert isinstance(post.post, Followup)
        followups.setdefault(post.post.to, []).append(post)
    items = []
    for post in opened.posts:
        body = post.post
        if isinstance(body, CheckIn):
            if body.ask is None:
                continue
            title = body.ask
        elif post.kind in (PostKind.ASK, PostKind.OFFER):
            title = body.title  # type: ignore[union-attr]
        else:
            continue
        answers = tuple(sorted(followups.get(post.record_id, ()), key=_chrono))
        closed = any(isinstance(f.post, Followup) and f.post.closes and f.author == post.author
                     for f in answers)
        items.append(BoardItem(post, title, answers, closed))
    return sorted(items, key=lambda item: _chrono(item.post))


def open_asks(opened: OpenedSpace) -> list[BoardItem]:
    """Asks (``ask`` posts and check-in asks) that their author has not closed."""
    return [item for item in board(opened)
            if not item.closed and isinstance(item.post.post, Ask | CheckIn)]


def gatherings(opened: OpenedSpace, now_ms: int, *, past: bool = False) -> list[OpenedPost]:
    """Gatherings from ``now_ms`` on (or all, with ``past``), soonest first."""
    found = []
    for post in opened.of_kind(PostKind.GATHERING):
        assert isinstance(post.post, Gathering)
        if past or post.post.when_ms >= now_ms:
            found.append(post)
    return sorted(found, key=lambda p: (p.post.when_ms, p.record_id))  # type: ignore[union-attr]


def crew_cards(opened: OpenedSpace) -> list[OpenedPost]:
    """The latest card of each crew (highest ts, then id), open crews first, then by name.

    Only cards proven to come from a member of their crew count (see
    :mod:`meshcrew.spaces.cards`).
    """
    latest: dict[bytes, OpenedPost] = {}
    unproven = unproven_cards(opened)
    for post in opened.of_kind(PostKind.CREW_CARD):
        assert isinstance(post.post, CrewCard)
        if post.record_id in unproven:
            continue
        held = latest.get(post.post.crew)
        if held is None or _chrono(post) > _chrono(held):
            latest[post.post.crew] = post
    cards = list(latest.values())

    def order(post: OpenedPost) -> tuple[bool, str, bytes]:
        assert isinstance(post.post, CrewCard)
        return not post.post.open, post.post.name.casefold(), post.post.crew

    return sorted(cards, key=order)


def looking_for_crew(opened: OpenedSpace) -> list[OpenedPost]:
    """Current members whose latest flag says they are looking for a crew, by key."""
    active = opened.state.active
    latest = _latest_own(opened, PostKind.LOOKING_FOR_CREW)
    return [post for key, post in sorted(latest.items())
            if key in active and isinstance(post.post, LookingForCrew) and post.post.looking]
