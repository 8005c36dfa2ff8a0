"""Proposals by consent: ``propose``, ``answer``, ``amend``, ``withdraw`` and ``proposals``.

Each handler resolves what the person typed and makes one call of the member service; the rules
are in ``meshcrew.spaces.proposals`` (docs/spaces.md, Proposals).
"""

from __future__ import annotations

import argparse
import re

from meshcrew.cli.display import local_time, proposal_lines
from meshcrew.cli.parsing import (
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    add_space_argument,
    with_examples,
)
from meshcrew.cli.service_access import open_member
from meshcrew.cli.session import Session
from meshcrew.cli.values import time_ms
from meshcrew.errors import InputError
from meshcrew.service import Member, parse_rhythm
from meshcrew.service.settings_text import format_keep, parse_change
from meshcrew.spaces import SettingsChange

_PROPOSAL_HELP = "the proposal's id, or its first hex digits as meshcrew proposals shows them"
_IN = re.compile(r"(\d+)\s*([smhdw])\Z")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
MAX_DEADLINE_DAYS = 366
_POSITIONS = {"consent": "consent", "stand-aside": "stand_aside", "stand_aside": "stand_aside",
              "object": "object"}


def deadline_ms(text: str, now_ms: int) -> int:
    """``--deadline``: a time from now (``90s``, ``30m``, ``12h``, ``3d``, ``2w``) or a date and
    time (``2026-02-01 18:00``, local unless it names an offset), in UTC ms.

    Raises:
        InputError: if it is neither, or more than a year away.
    """
    match = _IN.match(text.strip().lower())
    at = now_ms + int(match[1]) * _UNIT_MS[match[2]] if match else time_ms(text)
    if at - now_ms > MAX_DEADLINE_DAYS * _UNIT_MS["d"]:
        raise InputError(f"A deadline is at most {MAX_DEADLINE_DAYS} days away.")
    return at


def register(commands: Commands) -> None:
    """Add the proposal commands."""
    propose = add_command(
        commands, "propose", summary="put a proposal to a space's members",
        description="Put a proposal to the members of a space: they answer consent, stand "
        "aside or object. It passes once everyone has answered and no one objects, or at the "
        "deadline if no one objects and the space's quorum has answered; an objection blocks "
        "it. Your proposal counts as your consent. Prints its id.", handler=run_propose, json=True)
    with_examples(propose,
                  'meshcrew propose "Tuesday crew" --title "Check in on Thursdays" --set '
                  "rhythm=weekly:thu")
    add_space_argument(propose)
    propose.add_argument("--title", required=True, metavar="TEXT",
                         help="what you propose, in a line (1-120 characters)")
    propose.add_argument("--text", default="", metavar="TEXT",
                         help="the proposal in full (up to 2000 characters)")
    propose.add_argument("--deadline", metavar="WHEN",
                         help="when it closes: a time from now (90s, 30m, 12h, 3d, 2w) or a date "
                         "and time (2026-02-01 18:00); default the end of the next check-in "
                         "cycle")
    propose.add_argument("--set", action="append", dest="changes", metavar="NAME=VALUE",
                         help="a change of the space's settings it proposes, made once it "
                         "passes (repeat for several): name=TEXT, purpose=TEXT, rhythm=weekly:thu, "
                         "quorum=PERCENT, edits=proposal|anyone (congregations), "
                         "keep_checkins=CYCLES|forever, keep_posts=CYCLES|forever")

    settings = add_command(
        commands, "settings", summary="show a space's settings and their history; change them",
        description="Show a space's settings (name, purpose, rhythm, quorum, how long posts "
        "are kept) and every change "
        "made to them. In a crew or dyad they change only by a proposal that passed (meshcrew "
        "propose SPACE --set NAME=VALUE); it is made by itself once it passes, or with --by "
        "PROPOSAL. In a congregation any member may change them with --set, unless it decided "
        "that changes need a proposal (edits=proposal).", handler=run_settings, json=True)
    with_examples(settings,
                  'meshcrew settings "Tuesday crew"',
                  'meshcrew settings Riverside --set purpose="where our crews meet"')
    add_space_argument(settings)
    settings.add_argument("--set", action="append", dest="changes", metavar="NAME=VALUE",
                          help="change a setting (a congregation's, by any member): name, "
                          "purpose, rhythm, quorum, edits, keep_checkins, keep_posts")
    settings.add_argument("--by", metavar="PROPOSAL",
                          help="make the change of this passed proposal")

    answer = add_command(
        commands, "answer", summary="answer a proposal: consent, stand aside or object",
        description="Answer a proposal. consent: you support it going ahead. stand-aside: "
        "you will not take part but do not block it. object: it must not go ahead as it is "
        "(this blocks it while you hold to it). Standing aside and objecting need a reason. "
        "You may answer again while it is open: your latest answer counts. Prints the "
        "answer's id.", handler=run_answer, json=True)
    with_examples(answer,
                  "meshcrew answer 3f9a consent",
                  'meshcrew answer 3f9a object --reason "Thursdays I work late"')
    answer.add_argument("proposal", metavar="PROPOSAL", help=_PROPOSAL_HELP)
    answer.add_argument("position", metavar="ANSWER", choices=sorted(_POSITIONS),
                        help="consent, stand-aside or object")
    answer.add_argument("--reason", default="", metavar="TEXT",
                        help="why (required to stand aside or object; up to 500 characters)")

    amend = add_command(
        commands, "amend", summary="change the title or text of your open proposal",
        description="Change the title or text of a proposal you made, while it is open. "
        "Answers given before stay, and are shown as answering an earlier version. Prints the "
        "amendment's id.", handler=run_amend, json=True)
    with_examples(amend, 'meshcrew amend 3f9a --title "Check in on Wednesdays"')
    amend.add_argument("proposal", metavar="PROPOSAL", help=_PROPOSAL_HELP)
    amend.add_argument("--title", metavar="TEXT", help="the new title")
    amend.add_argument("--text", metavar="TEXT", help="the new text")

    withdraw = add_command(
        commands, "withdraw", summary="withdraw your open proposal",
        description="Withdraw a proposal you made, while it is open. Prints the withdrawal's "
        "id.", handler=run_withdraw, json=True)
    with_examples(withdraw, 'meshcrew withdraw 3f9a --note "we found another way"')
    withdraw.add_argument("proposal", metavar="PROPOSAL", help=_PROPOSAL_HELP)
    withdraw.add_argument("--note", default="", metavar="TEXT",
                          help="why (up to 500 characters)")

    listing = add_command(
        commands, "proposals", summary="list a space's proposals and who answered what",
        description="List the proposals of a space, oldest first: where each stands (open, "
        "blocked, passed, expired, withdrawn), who answered what and who has not answered "
        "yet.", handler=run_proposals, json=True)
    with_examples(listing, 'meshcrew proposals "Tuesday crew" --open')
    add_space_argument(listing)
    listing.add_argument("--open", action="store_true", dest="open_only",
                         help="only proposals that are not decided yet")



def run_propose(args: argparse.Namespace, session: Session) -> int:
    """Make a proposal."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        deadline = None if args.deadline is None else deadline_ms(args.deadline, member.now())
        change = _change(member, space_id, args.changes)
        record = member.propose(space_id, title=args.title, text=args.text,
                                deadline_ms=deadline, change=None if change.empty else change)
        session.answer_written(space_id, record, "Proposed")
    return EXIT_OK


def run_answer(args: argparse.Namespace, session: Session) -> int:
    """Answer a proposal."""
    with open_member(session) as member:
        proposal = member.resolve_proposal_post(args.proposal)
        space_id = member.proposal(proposal).space
        record = member.answer(proposal, position=_POSITIONS[args.position],
                               reason=args.reason)
        session.answer_written(space_id, record, "Answered")
    return EXIT_OK


def run_amend(args: argparse.Namespace, session: Session) -> int:
    """Amend a proposal."""
    with open_member(session) as member:
        proposal = member.resolve_proposal_post(args.proposal)
        space_id = member.proposal(proposal).space
        record = member.amend_proposal(proposal, title=args.title, text=args.text)
        session.answer_written(space_id, record, "Amended your proposal")
    return EXIT_OK


def run_withdraw(args: argparse.Namespace, session: Session) -> int:
    """Withdraw a proposal."""
    with open_member(session) as member:
        proposal = member.resolve_proposal_post(args.proposal)
        space_id = member.proposal(proposal).space
        record = member.withdraw_proposal(proposal, note=args.note)
        session.answer_written(space_id, record, "Withdrew your proposal")
    return EXIT_OK


def run_proposals(args: argparse.Namespace, session: Session) -> int:
    """List a space's proposals."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        entries = [e for e in member.proposals(space_id)
                   if not (args.open_only and e.decided)]
    session.answer({"space": space_id.hex(), "proposals": [e.to_json() for e in entries]},
                   *([line for entry in entries for line in proposal_lines(entry)]
                     or ["No proposals yet: make one with meshcrew propose SPACE --title TEXT"]))
    return EXIT_OK


def _change(member: Member, space_id: bytes, pairs: list[str] | None) -> SettingsChange:
    """The ``--set`` pairs as a change; a rhythm without an offset keeps the space's."""
    rhythm = member.summary(space_id).rhythm
    offset = parse_rhythm(rhythm).utc_offset_min if rhythm else 0
    return parse_change(pairs or (), default_offset_min=offset)


def run_settings(args: argparse.Namespace, session: Session) -> int:
    """Show a space's settings and history, or change them."""
    if args.changes and args.by:
        raise UsageError("give either --set (a change) or --by (a passed proposal's change)",
                         "meshcrew settings")
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        change = _change(member, space_id, args.changes)
        if args.changes or args.by:
            by = member.resolve_proposal_post(args.by) if args.by else None
            record = member.change_settings(space_id, None if by else change, by=by)
            session.answer_written(space_id, record, "Changed the settings")
            return EXIT_OK
        current = member.settings(space_id)
        history = member.settings_history(space_id)
    if session.json:
        session.print_json({"space": space_id.hex(), "settings": current.to_json(),
                            "history": [h.to_json() for h in history]})
        return EXIT_OK
    quorum = "everyone" if current.quorum == 100 else f"{current.quorum}%"
    for label, value in (("name", current.name), ("purpose", current.purpose or "-"),
                         ("rhythm", current.rhythm), ("quorum", quorum),
                         ("checkins", f"kept {format_keep(current.keep_checkins)}"),
                         ("posts", f"kept {format_keep(current.keep_posts)}"),
                         ("changes", "by a passed proposal" if current.edit_by_proposal
                          else "by any member")):
        session.print(f"{label:<8} {value}")
    for entry in history:
        what = ", ".join(f"{k} = {v}" for k, v in entry.change.items())
        why = f" (proposal {entry.by_title!r})" if entry.by_title is not None else ""
        session.print(f"{local_time(entry.ts)}  {entry.author_name}: {what}{why}")
    return EXIT_OK
