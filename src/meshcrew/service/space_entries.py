"""What a view of a space builds for the reads: its summary, members, removals, rhythm cycle,
board, threads, proposals, settings and refusals, as the entries of :mod:`.entries`.

Mixed into :class:`meshcrew.service.views.SpaceView`, over the state, the posts and the names the
view holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from meshcrew.identity import fingerprint
from meshcrew.reasons import Reason
from meshcrew.service.entries import (
    AnswerEntry,
    BoardItem,
    BoardView,
    CycleEntry,
    MemberEntry,
    NamedKey,
    PostEntry,
    ProposalEntry,
    RejectedEntry,
    RemovalEntry,
    SettingsChangeEntry,
    SettingsEntry,
    SpaceSummary,
    ThreadEntry,
)
from meshcrew.service.memo import memo
from meshcrew.service.rhythm_text import format_rhythm
from meshcrew.spaces import (
    Cycle,
    OpenedPost,
    OpenedSpace,
    PostKind,
    Rhythm,
    SpaceKind,
    SpaceMeta,
    SpaceState,
    Status,
)
from meshcrew.spaces import proposals as domain_proposals
from meshcrew.spaces import views as domain_views
from meshcrew.spaces.cards import unproven_cards
from meshcrew.spaces.editing import SettingsHistory
from meshcrew.spaces.posts import Proposal
from meshcrew.spaces.settings import SettingsChange

_CHECKIN_KINDS = (SpaceKind.CREW, SpaceKind.DYAD)


def change_json(change: SettingsChange) -> dict[str, Any]:
    """What a settings change changes, with plain values (the rhythm as text)."""
    return {name: format_rhythm(value) if name == "rhythm" else value
            for name, value in change.changed().items()}


class _Viewed(Protocol):
    """What the entries use of the view (and of each other)."""

    space_id: bytes

    @property
    def state(self) -> SpaceState: ...
    @property
    def opened(self) -> OpenedSpace: ...
    @property
    def posts_by_id(self) -> dict[bytes, OpenedPost]: ...
    @property
    def _member_views(self) -> list[domain_views.MemberView]: ...
    @property
    def settings(self) -> SettingsHistory | None: ...
    @property
    def meta(self) -> SpaceMeta | None: ...
    @property
    def is_member(self) -> bool: ...
    @property
    def holds_keys(self) -> bool: ...
    @property
    def my_member(self) -> bytes: ...
    @property
    def my_status(self) -> str: ...
    def name_of(self, key: bytes) -> str: ...
    def entry_of(self, post: OpenedPost) -> PostEntry: ...
    def require_meta(self) -> SpaceMeta: ...
    @property
    def last_ts(self) -> int: ...
    @property
    def member_entries(self) -> tuple[MemberEntry, ...]: ...
    @property
    def _deadlines(self) -> tuple[int, ...]: ...
    @property
    def _unproven_cards(self) -> dict[bytes, Status]: ...
    def _cycle_view(self, rhythm: Rhythm, now_ms: int) -> domain_views.CycleView: ...
    def member_entry(self, key: bytes) -> MemberEntry: ...
    def proposals(self, now_ms: int) -> domain_proposals.Proposals: ...
    def proposal_entry(self, view: domain_proposals.ProposalView) -> ProposalEntry: ...


class SpaceEntries:
    """The entries a view builds (mixed into :class:`~meshcrew.service.views.SpaceView`)."""

    @memo
    def last_ts(self: _Viewed) -> int:
        """The signed time of the newest record (0 if none)."""
        return max((r.ts for r in self.state.records.values()), default=0)

    @memo
    def energy(self: _Viewed) -> dict[bytes, list[tuple[int, int]]]:
        """Per member key: ``(ts, energy)`` of each check-in, oldest first."""
        return domain_views.energy_series(self.opened)

    def _cycle_view(self: _Viewed, rhythm: Rhythm, now_ms: int) -> domain_views.CycleView:
        """Who checked in during the cycle containing ``now_ms`` (kept per cycle: the home
        and space screens ask several times per change)."""
        cycles: dict[tuple[Rhythm, Cycle], domain_views.CycleView] = \
            self.__dict__.setdefault("_cycles", {})
        key = (rhythm, rhythm.cycle_at(now_ms))
        found = cycles.get(key)
        if found is None:
            found = cycles[key] = domain_views.checkin_cycle(self.opened, rhythm, now_ms)
        return found

    def summary(self: _Viewed, now_ms: int) -> SpaceSummary:
        """Where the space and this member stand, at ``now_ms``."""
        state, meta = self.state, self.meta
        genesis = state.records.get(self.space_id)
        needs_checkin = (self.is_member and meta is not None and state.kind in _CHECKIN_KINDS
                         and self.my_member not in self._cycle_view(meta.rhythm, now_ms).checkins)
        return SpaceSummary(
            id=self.space_id, kind=state.kind.value if state.kind else "unknown",
            name=meta.name if meta else None, purpose=meta.purpose if meta else "",
            rhythm=format_rhythm(meta.rhythm) if meta else None,
            parent=meta.parent if meta else None, history=state.history,
            members=len(state.active), my_status=self.my_status,
            waiting_for_keys=self.is_member and not self.holds_keys,
            needs_checkin=needs_checkin, founder=state.founder,
            created_ts=genesis.ts if genesis else None, last_ts=self.last_ts,
            quorum=meta.quorum if meta else None, writes_as=self.my_member)

    @memo
    def member_entries(self: _Viewed) -> tuple[MemberEntry, ...]:
        """Everyone who is or was a member: current members first, then by name."""
        return tuple(MemberEntry(
            key=row.key, name=row.name, fingerprint=fingerprint(row.key), bio=row.bio,
            status=row.status.value, joined_ts=row.joined_ts, invited_by=row.invited_by,
            is_me=row.key == self.my_member, is_founder=row.is_founder)
            for row in self._member_views)

    def member_entry(self: _Viewed, key: bytes) -> MemberEntry:
        """The member list's row of ``key``."""
        return next(m for m in self.member_entries if m.key == key)

    def removal_entries(self: _Viewed) -> list[RemovalEntry]:
        """Every removal proposal, oldest first."""
        rows = []
        for removal in self.state.removals.values():
            rows.append(RemovalEntry(
                id=removal.id, space=self.space_id, member=removal.member,
                member_name=self.name_of(removal.member), proposer=removal.proposer,
                consents=tuple(sorted(removal.consents & removal.electorate)),
                electorate=len(removal.electorate), needed=removal.needed,
                effective=removal.effective, ts=self.state.records[removal.id].ts))
        return sorted(rows, key=lambda r: (r.ts, r.id))

    def cycle(self: _Viewed, now_ms: int) -> CycleEntry:
        """The rhythm cycle containing ``now_ms``."""
        rhythm = self.require_meta().rhythm
        view = self._cycle_view(rhythm, now_ms)
        return CycleEntry(self.space_id, format_rhythm(rhythm), view.cycle.start_ms,
                          view.cycle.end_ms, tuple(self.entry_of(p) for p in
                                                   view.checkins.values()),
                          tuple(self.member_entry(k) for k in view.missing))

    def board(self: _Viewed, now_ms: int) -> BoardView:
        """Asks and offers, upcoming gatherings, crew cards and who is looking for a crew."""
        items = tuple(BoardItem(self.entry_of(item.post), item.title,
                                tuple(self.entry_of(f) for f in item.followups), item.closed)
                      for item in domain_views.board(self.opened))
        return BoardView(
            self.space_id, items,
            tuple(self.entry_of(p) for p in domain_views.gatherings(self.opened, now_ms)),
            tuple(self.entry_of(p) for p in domain_views.crew_cards(self.opened)),
            tuple(self.entry_of(p) for p in domain_views.looking_for_crew(self.opened)))

    def thread(self: _Viewed, record_id: bytes) -> ThreadEntry:
        """A readable post and what was said in answer to it."""
        found = domain_views.thread(self.opened, record_id)
        return ThreadEntry(self.entry_of(self.posts_by_id[record_id]),
                           tuple(map(self.entry_of, found.replies)),
                           tuple(map(self.entry_of, found.reactions)),
                           tuple(map(self.entry_of, found.followups)))

    def proposals(self: _Viewed, now_ms: int) -> domain_proposals.Proposals:
        """Every proposal with its outcome at ``now_ms`` (see :mod:`meshcrew.spaces.proposals`).

        Kept per deadline crossed: the outcome changes with the time only at a deadline.
        """
        found: dict[tuple[int, ...], domain_proposals.Proposals] = \
            self.__dict__.setdefault("_proposals", {})
        deadlines = self._deadlines
        key = tuple(d for d in deadlines if d <= now_ms)
        held = found.get(key)
        if held is None:
            history = self.settings
            quorum_of: Callable[[OpenedPost], int] = (
                history.quorum_of if history is not None else lambda _post: domain_proposals.ALL)
            held = found[key] = domain_proposals.decide(self.opened, now_ms, quorum_of)
        return held

    @memo
    def _deadlines(self: _Viewed) -> tuple[int, ...]:
        """The deadlines of the space's proposals, soonest first."""
        return tuple(sorted(p.post.deadline_ms  # type: ignore[union-attr]
                            for p in self.opened.of_kind(PostKind.PROPOSAL)))

    @memo
    def _unproven_cards(self: _Viewed) -> dict[bytes, Status]:
        """Crew cards not proven to come from their crew (see :mod:`meshcrew.spaces.cards`)."""
        return unproven_cards(self.opened)

    def proposal_entry(self: _Viewed, view: domain_proposals.ProposalView) -> ProposalEntry:
        """The entry of one proposal (names as this member sees them)."""
        def named(keys: Iterable[bytes]) -> tuple[NamedKey, ...]:
            return tuple(sorted((NamedKey(k, self.name_of(k)) for k in keys),
                                key=lambda n: (n.name.casefold(), n.key)))

        answers = tuple(sorted(
            (AnswerEntry(a.post.record_id, a.member, self.name_of(a.member), a.position.value,
                         a.reason, a.post.ts, a.before_amendment)
             for a in view.answers.values()), key=lambda a: (a.name.casefold(), a.member)))
        body = view.post.post
        assert isinstance(body, Proposal)
        change = body.settings_change
        history = self.settings
        return ProposalEntry(
            id=view.id, space=self.space_id, proposer=view.proposer,
            proposer_name=self.name_of(view.proposer), title=view.title, text=view.text,
            ts=view.post.ts, deadline_ms=view.deadline_ms, status=view.status.value,
            decided_ms=view.decided_ms, quorum=view.quorum, needed=view.needed,
            electorate=named(view.electorate), answers=answers, waiting=named(view.waiting),
            amendments=len(view.amendments),
            change=None if change.empty else change_json(change),
            carried_out=history is not None and view.id in history.carried_out)

    def settings_entry(self: _Viewed) -> SettingsEntry:
        """The settings now (raises SpaceError while this member holds no key)."""
        meta = self.require_meta()
        return SettingsEntry(meta.name, meta.purpose, format_rhythm(meta.rhythm), meta.quorum,
                             meta.edit_by_proposal or self.state.kind is not
                             SpaceKind.CONGREGATION, meta.keep_checkins, meta.keep_posts)

    def settings_changes(self: _Viewed) -> list[SettingsChangeEntry]:
        """The changes of the settings that counted, oldest first."""
        self.require_meta()
        history = self.settings
        assert history is not None
        titles = {p.record_id: getattr(p.post, "title", "")
                  for p in self.opened.of_kind(PostKind.PROPOSAL)}
        return [SettingsChangeEntry(
            id=a.post.record_id, space=self.space_id, author=a.post.author,
            author_name=self.name_of(a.post.author), ts=a.post.ts, by=a.by,
            by_title=titles.get(a.by) if a.by is not None else None,
            change=change_json(a.change)) for a in history.applied]

    def proposal_entries(self: _Viewed, now_ms: int) -> list[ProposalEntry]:
        """Every proposal, oldest first."""
        return [self.proposal_entry(v) for v in self.proposals(now_ms).proposals]

    def refusals(self: _Viewed) -> list[RejectedEntry]:
        """Records the space rules refused, and accepted posts whose content is invalid (or
        that the proposal rules refuse)."""
        rows = []
        # Which proposal posts are refused does not depend on the time (only outcomes do).
        by_rules = {**self.proposals(self.last_ts).refused, **self._unproven_cards,
                    **(self.settings.refused if self.settings is not None else {})}
        for source, refused in (("space", self.state.rejected()),
                                ("post", {**self.opened.refused, **by_rules})):
            for rid, status in refused.items():
                record = self.state.records[rid]
                reason = status.reason or Reason.BAD_BODY
                rows.append(RejectedEntry(rid, self.space_id, source, reason.value,
                                          reason.sentence, status.detail, record.author, None,
                                          record.ts))
        return rows
