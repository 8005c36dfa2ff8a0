"""Proposals, for the member service: put one to the members, answer, amend, withdraw, and make
the settings change of one that passed.

The rules are in :mod:`meshcrew.spaces.proposals`. These are mixed into
:class:`meshcrew.service.member.Member`.
"""

from __future__ import annotations

from typing import Protocol

from meshcrew.errors import InputError, SpaceError
from meshcrew.reasons import Reason
from meshcrew.service.entries import ProposalEntry
from meshcrew.service.posting import make_post
from meshcrew.service.views import SpaceView
from meshcrew.spaces import Amend, Answer, Position, Post, Proposal, Settings, SpaceKind, Withdraw
from meshcrew.spaces.settings import SettingsChange


class _Proposes(Protocol):
    """What the proposal actions use of the member service (and of each other)."""

    def view(self, space_id: bytes) -> SpaceView: ...
    def proposal(self, proposal_id: bytes) -> ProposalEntry: ...
    def proposals(self, space_id: bytes) -> list[ProposalEntry]: ...
    def _next_ts(self, space_id: bytes | None) -> int: ...
    def _write_post(self, space_id: bytes, post: Post) -> bytes: ...
    def change_settings(self, space_id: bytes, change: SettingsChange | None = None, *,
                        by: bytes | None = None) -> bytes: ...
    def _carry_out_passed(self, space_id: bytes) -> list[bytes]: ...
    def _open_proposal(self, proposal_id: bytes, *, proposer_only: bool = False
                       ) -> ProposalEntry: ...


class ProposalActions:
    """Putting proposals to the members and answering them (mixed into the member service)."""

    def propose(self: _Proposes, space_id: bytes, *, title: str, text: str = "",
                deadline_ms: int | None = None, change: SettingsChange | None = None
                ) -> bytes:
        """Put a proposal to the members (it counts as this member's consent).

        Args:
            space_id: the space.
            title: what is proposed, in a line (1 to 120 characters).
            text: the proposal in full (up to 2000 characters).
            deadline_ms: when it closes (UTC ms); default the end of the next rhythm cycle.
            change: a change of the space's settings it proposes; made once it passes.
        """
        view = self.view(space_id)
        view.require_member()
        now = self._next_ts(space_id)
        if deadline_ms is None:
            rhythm = view.require_meta().rhythm
            deadline_ms = rhythm.cycle_at(rhythm.cycle_at(now).end_ms).end_ms
        if deadline_ms <= now:
            raise InputError("The deadline has passed already; give a later one.")
        wire = {} if change is None else change.to_wire()
        made = self._write_post(space_id, make_post(Proposal, title=title, text=text,
                                                    deadline_ms=deadline_ms, change=wire))
        self._carry_out_passed(space_id)  # a space of one: everyone has answered already
        return made

    def answer(self: _Proposes, proposal_id: bytes, *, position: Position | str,
               reason: str = "") -> bytes:
        """Answer a proposal: consent, stand aside or object (with a reason); a later answer
        replaces an earlier one while the proposal is open."""
        proposal = self._open_proposal(proposal_id)
        if proposal.proposer == self.view(proposal.space).my_member:
            raise SpaceError("Your proposal already counts as your consent; to take it back, "
                             "withdraw it.")
        try:
            chosen = Position(position)
        except ValueError:
            raise InputError(f"{position!r} is not an answer; answer consent, stand_aside or "
                             "object.") from None
        if chosen is not Position.CONSENT and not reason.strip():
            raise InputError("To stand aside or object, say why (--reason TEXT).")
        made = self._write_post(proposal.space, make_post(Answer, to=proposal_id,
                                                          position=chosen, reason=reason))
        self._carry_out_passed(proposal.space)  # this answer may have made it pass
        return made

    def change_settings(self: _Proposes, space_id: bytes,
                        change: SettingsChange | None = None, *,
                        by: bytes | None = None) -> bytes:
        """Change a space's settings; returns the ``settings`` post's id.

        Args:
            space_id: the space.
            change: what to change. In a crew or dyad (or a congregation that decided so) it
                needs a passed proposal: give ``by`` instead.
            by: a passed proposal whose change to make.
        """
        view = self.view(space_id)
        view.require_member()
        meta = view.require_meta()
        if by is not None:
            proposal = self.proposal(by)
            if proposal.space != space_id or proposal.change is None:
                raise SpaceError("That proposal proposes no change of this space's settings.")
            if proposal.status != "passed":
                raise SpaceError(f"That proposal has not passed ({proposal.status}); its change "
                                 "can be made once it has.")
            if proposal.carried_out:
                raise SpaceError("That proposal's change has been made already.")
            body = view.posts_by_id[by].post
            assert isinstance(body, Proposal)
            return self._write_post(space_id, Settings(body.change, by))
        if change is None or change.empty:
            raise InputError("Give a setting to change.")
        if view.state.kind is not SpaceKind.CONGREGATION or meta.edit_by_proposal:
            raise SpaceError("In this space the settings change by consent: put the change to "
                             "the members with meshcrew propose SPACE --title TEXT --set "
                             "NAME=VALUE; once it passes, it is made.")
        return self._write_post(space_id, Settings(change.to_wire()))

    def _carry_out_passed(self: _Proposes, space_id: bytes) -> list[bytes]:
        """Make the change of every passed proposal whose change is not made yet (any member
        may; two doing it at once is harmless: only the first counts)."""
        made = []
        for entry in self.proposals(space_id):
            if entry.status == "passed" and entry.change is not None \
                    and not entry.carried_out:
                made.append(self.change_settings(space_id, by=entry.id))
        return made

    def amend_proposal(self: _Proposes, proposal_id: bytes, *, title: str | None = None,
                       text: str | None = None) -> bytes:
        """Change the title or text of this member's open proposal (what is left out stays)."""
        proposal = self._open_proposal(proposal_id, proposer_only=True)
        if title is None and text is None:
            raise InputError("Give a new title or a new text.")
        return self._write_post(proposal.space, make_post(
            Amend, to=proposal_id, title=proposal.title if title is None else title,
            text=proposal.text if text is None else text))

    def withdraw_proposal(self: _Proposes, proposal_id: bytes, *, note: str = "") -> bytes:
        """Withdraw this member's open proposal."""
        proposal = self._open_proposal(proposal_id, proposer_only=True)
        return self._write_post(proposal.space, make_post(Withdraw, to=proposal_id,
                                                          note=note))

    def _open_proposal(self: _Proposes, proposal_id: bytes, *, proposer_only: bool = False
                       ) -> ProposalEntry:
        """The proposal, if this member may still act on it; else a refusal saying why."""
        proposal = self.proposal(proposal_id)
        view = self.view(proposal.space)
        view.require_member()
        if proposer_only and proposal.proposer != view.my_member:
            raise SpaceError(Reason.NOT_PROPOSER.sentence)
        if proposal.decided_ms is not None:
            raise SpaceError(f"This proposal is closed ({proposal.status}): "
                             f"{Reason.PROPOSAL_CLOSED.sentence}")
        if self._next_ts(proposal.space) >= proposal.deadline_ms:
            raise SpaceError(f"This proposal reached its deadline: "
                             f"{Reason.PROPOSAL_CLOSED.sentence}")
        return proposal
