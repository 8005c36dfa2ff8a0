"""Spaces and membership: ``crew create``, ``crew card``, ``spaces``, ``invite``, ``join``,
``members``, ``leave``, ``remove``, ``consent`` and ``rotate``.

Each handler resolves what the person typed and makes one call of the member service.
"""

from __future__ import annotations

import argparse
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from meshcrew.cli.display import local_time, member_line, short, space_line
from meshcrew.cli.invite_commands import run_revoke
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
from meshcrew.cli.values import duration_ms, file_path
from meshcrew.errors import InputError, SpaceError, UnknownName
from meshcrew.service import Member, RemovalEntry, parse_rhythm
from meshcrew.service.settings_text import parse_keep
from meshcrew.spaces import InviteCode, PostKind, SpaceKind, decode_invite_code
from meshcrew.spaces.settings import MAX_UTC_OFFSET_MIN

DEFAULT_EXPIRY = "7d"


def register(commands: Commands) -> None:
    """Add the space and membership commands."""
    crew = add_command(
        commands, "crew", summary="start a crew, dyad or congregation; show a crew's card",
        description="Commands about crews: crew create starts a space, crew card tells the "
        "congregation whether a crew is open to new crewmates.",
        handler=_group_help)
    # add_command builds every parser as a CliParser, so its subparsers are CliParsers too.
    crew_commands = cast("Commands", crew.add_subparsers(title="commands", metavar="COMMAND",
                                                         dest="crew_command"))
    create = add_command(
        crew_commands, "create", summary="start a new crew, dyad or congregation",
        description="Start a new space with you as its first member and print its id. Its "
        "name, purpose and rhythm are encrypted: only members can read them.",
        handler=run_create, json=True)
    with_examples(create,
                  'meshcrew crew create "Tuesday crew" --purpose "a weekly check-in on work and '
                  'life"',
                  "meshcrew crew create Riverside --kind congregation",
                  'meshcrew crew create "Tuesday crew" --in Riverside --rhythm weekly:thu')
    create.add_argument("name", metavar="NAME", help="what the space is called (1-64 characters)")
    create.add_argument("--kind", choices=[k.value for k in SpaceKind], default="crew",
                        help="crew (3-8 people, the default), dyad (a pair) or congregation "
                        "(30-200, where crews form)")
    create.add_argument("--purpose", default="", metavar="TEXT",
                        help="what the space is for (up to 500 characters)")
    create.add_argument("--in", dest="parent", metavar="SPACE",
                        help="the congregation this crew or dyad belongs to")
    create.add_argument("--rhythm", default="weekly:mon", metavar="RHYTHM",
                        help="when check-ins are due: daily, weekly:DAY or fortnightly:DAY, "
                        "optionally with a UTC offset such as +13:00 (default: weekly:mon at "
                        "this machine's current offset)")
    create.add_argument("--no-history", action="store_true",
                        help="joiners cannot read what was written before they joined")
    _add_rule_options(create)

    card = add_command(
        crew_commands, "card", summary="say whether a crew is open to new crewmates",
        description="Post the card of a crew (or dyad) you are in to the congregation it "
        "belongs to: its name, whether it is open to new crewmates, and a note. The "
        "congregation's board shows each crew's latest card. Prints the card's id.",
        handler=run_card, json=True)
    with_examples(card,
                  'meshcrew crew card "Tuesday crew" --open --note "two seats, Tuesday evenings"')
    card.add_argument("crew", metavar="CREW", help="the crew (name, or id or its start)")
    openness = card.add_mutually_exclusive_group(required=True)
    openness.add_argument("--open", dest="open", action="store_true",
                          help="the crew welcomes new crewmates")
    openness.add_argument("--closed", dest="open", action="store_false",
                          help="the crew is not looking for anyone now")
    card.add_argument("--note", default="", metavar="TEXT",
                      help="what the crew is about, who would fit (up to 500 characters)")

    add_command(
        commands, "spaces", summary="list your crews, dyads and congregations",
        description="List every space in the replica: yours first, with your status, the "
        "member count, the rhythm and whether your check-in is due.", handler=run_spaces, json=True)

    invite = add_command(
        commands, "invite", summary="make an invite code for a space (or revoke one)",
        description="Make an invite and print its one-line code. Give the code to the person "
        "you invite, privately: whoever holds it can join. With -o, also write the space's "
        "records to a file for a joiner who is not online with you (they run: meshcrew join "
        "CODE --from FILE). `meshcrew invite revoke INVITE` revokes an invite instead (its code, "
        "or its id as meshcrew invites shows it): no one can join with it any more.",
        handler=run_invite, json=True)
    with_examples(invite,
                  'meshcrew invite "Tuesday crew"',
                  'meshcrew invite "Tuesday crew" --uses 3 --expires 2d',
                  "meshcrew invite revoke 3f9a    # an invite's id start, as meshcrew invites "
                  "shows it")
    invite.add_argument("space", metavar="SPACE", help="the space (name, or id or its start); "
                        "or `revoke`, followed by the invite to revoke")
    invite.add_argument("invite_ref", nargs="?", metavar="INVITE", help=argparse.SUPPRESS)
    invite.add_argument("--uses", type=int, default=1, metavar="N",
                        help="how many people the code admits (default 1)")
    invite.add_argument("--expires", default=DEFAULT_EXPIRY, metavar="DURATION",
                        help=f"how long the code works: 30m, 12h, 7d, 2w (default "
                        f"{DEFAULT_EXPIRY})")
    invite.add_argument("-o", "--output", metavar="FILE",
                        help="also write the space's records to FILE for an offline joiner")

    join = add_command(
        commands, "join", summary="join a space with an invite code",
        description="Join the space of an invite code. Offline, first import the inviter's "
        "file with --from; with -o, write your join to a file to give back to the inviter "
        "(they run: meshcrew import FILE -o REPLY, and you import REPLY to get the keys).",
        handler=run_join, json=True)
    with_examples(join,
                  "meshcrew join mc1-...    # the code a member gave you",
                  "meshcrew join mc1-... --from crew.mcr -o reply.mcr    # offline, with the "
                  "inviter's file")
    join.add_argument("code", metavar="CODE", help="the invite code (starts with mc1-)")
    join.add_argument("--from", dest="source", metavar="FILE",
                      help="import the inviter's records from FILE first")
    join.add_argument("-o", "--output", metavar="FILE",
                      help="write the space's records, with your join, to FILE for the inviter")

    members = add_command(
        commands, "members", summary="list the members of a space",
        description="List everyone who is or was a member, and open removal proposals.",
        handler=run_members, json=True)
    with_examples(members, 'meshcrew members "Tuesday crew"')
    add_space_argument(members)

    leave = add_command(
        commands, "leave", summary="leave a space",
        description="Leave a space. Always allowed. You keep what you could read; the others "
        "rotate the keys, so you cannot read anything written after you left.",
        handler=run_leave, json=True)
    with_examples(leave, 'meshcrew leave "Tuesday crew"')
    add_space_argument(leave)
    leave.add_argument("--expire-posts", action="store_true",
                       help="take your past check-ins and conversation posts with you: every "
                       "member's node deletes them now (by default they stay, under the "
                       "space's retention)")

    remove = add_command(
        commands, "remove", summary="propose removing a member (needs consent)",
        description="Propose removing a member. It takes effect once a majority of the other "
        "members consent (your proposal counts as your consent); they consent with: meshcrew "
        "consent SPACE PROPOSAL.", handler=run_remove, json=True)
    with_examples(remove, 'meshcrew remove "Tuesday crew" Bo')
    add_space_argument(remove)
    remove.add_argument("member", metavar="MEMBER",
                        help="the member: display name, fingerprint, or key (or its start)")

    consent = add_command(
        commands, "consent", summary="consent to a removal proposal",
        description="Consent to a proposal to remove a member. PROPOSAL is the proposal's id "
        "(or its start, as meshcrew members shows it), or the member it would remove.",
        handler=run_consent, json=True)
    with_examples(consent, 'meshcrew consent "Tuesday crew" Bo')
    add_space_argument(consent)
    consent.add_argument("proposal", metavar="PROPOSAL",
                         help="the proposal's id (or its start), or the member it names")

    rotate = add_command(
        commands, "rotate", summary="rotate a space's keys now if its membership changed",
        description="Give the current members a new key for what is written from now on, if "
        "someone joined, left or was removed since the keys last changed. This normally "
        "happens by itself (the inviter rotates when a join arrives; anyone rotates before "
        "writing after a departure); use it when a joiner waits for the keys and nobody else "
        "is around. Does nothing when the keys are current.", handler=run_rotate, json=True)
    with_examples(rotate, 'meshcrew rotate "Tuesday crew"')
    add_space_argument(rotate)


def _group_help(args: argparse.Namespace, session: Session) -> int:
    raise UsageError("the crew command needs a command after it: crew create NAME, or "
                     "crew card CREW --open", "meshcrew crew")


def local_offset_min() -> int:
    """This machine's current offset from UTC, in minutes (within the allowed range)."""
    offset = datetime.now().astimezone().utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return max(-MAX_UTC_OFFSET_MIN, min(MAX_UTC_OFFSET_MIN, minutes))


def _add_rule_options(create: argparse.ArgumentParser) -> None:
    """The options of ``crew create`` that set how the space decides and what it keeps."""
    create.add_argument("--quorum", type=int, default=100, metavar="PERCENT",
                        help="how many of the members (1-100 percent) must have answered a "
                        "proposal by its deadline for it to pass without objection (default "
                        "100: everyone)")
    create.add_argument("--keep-checkins", default="forever", metavar="CYCLES",
                        help="how many rhythm cycles check-ins are kept before every member's "
                        "node deletes them (default: forever)")
    create.add_argument("--keep-posts", default="forever", metavar="CYCLES",
                        help="the same for replies, reactions, asks, offers, follow-ups and "
                        "gatherings (default: forever)")


def run_create(args: argparse.Namespace, session: Session) -> int:
    """Create a space; print its id."""
    rhythm = parse_rhythm(args.rhythm, default_offset_min=local_offset_min())
    keep_checkins, keep_posts = parse_keep(args.keep_checkins), parse_keep(args.keep_posts)
    with open_member(session) as member:
        parent = member.resolve_space(args.parent) if args.parent is not None else None
        space_id = member.create_space(args.name, kind=args.kind, purpose=args.purpose,
                                       parent=parent, rhythm=rhythm,
                                       history=not args.no_history, quorum=args.quorum,
                                       keep_checkins=keep_checkins, keep_posts=keep_posts)
        if session.json:
            session.print_json(member.summary(space_id).to_json())
        elif session.out.isatty():  # a person reads it; a script reading a pipe, the id alone
            name = member.summary(space_id).name or args.name
            session.print(f"Started {name}, a {args.kind} (id {short(space_id)}). Invite "
                          f"people with: meshcrew invite {shlex.quote(name)}")
        else:
            session.print(space_id.hex())
    return EXIT_OK


def run_card(args: argparse.Namespace, session: Session) -> int:
    """Post a crew's card to its congregation."""
    with open_member(session) as member:
        crew_id = member.resolve_space(args.crew)
        crew = member.summary(crew_id)
        if crew.my_status != "active":
            raise SpaceError("Only a member of the crew can post its card.")
        if crew.parent is None or crew.name is None:
            raise SpaceError(f"{crew.name or 'This space'} belongs to no congregation, so it "
                             "has no card; a crew made with --in CONGREGATION does.")
        post = member.make_post(PostKind.CREW_CARD, crew=crew_id, name=crew.name,
                                open=args.open, note=args.note)
        record = member.post(crew.parent, post)
    session.answer_written(crew.parent, record, "Posted the crew's card")
    return EXIT_OK


def run_spaces(args: argparse.Namespace, session: Session) -> int:
    """List the spaces."""
    with open_member(session) as member:
        found = member.spaces()
    session.answer({"spaces": [s.to_json() for s in found]},
                   *(map(space_line, found) if found else
                     ["You are in no space yet. Start one with: meshcrew crew create NAME, or "
                      "join one with: meshcrew join CODE"]))
    return EXIT_OK


def run_invite(args: argparse.Namespace, session: Session) -> int:
    """Make an invite; print the code (and write the records with -o). ``invite revoke
    INVITE`` revokes one (see :mod:`meshcrew.cli.invite_commands`)."""
    if args.space == "revoke" and args.invite_ref is not None:
        return run_revoke(args, session)
    if args.invite_ref is not None:
        raise UsageError(f"unrecognized argument: {args.invite_ref} (to revoke an invite: "
                         "meshcrew invite revoke INVITE)", "meshcrew invite")
    ttl = duration_ms(args.expires)
    output = file_path(args.output) if args.output else None
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        expires = member.now() + ttl
        code = member.invite(space_id, uses=args.uses, expires_ms=expires)
        exported = member.export_file([space_id], output) if output is not None else None
    if session.json:
        session.print_json({"code": code, "space": space_id.hex(), "uses": args.uses,
                            "expires_ms": expires,
                            "exported": exported.to_json() if exported else None})
        return EXIT_OK
    session.print(code)
    if exported is not None:
        session.print(f"Wrote {exported.records} records to {exported.path}; the joiner runs: "
                      "meshcrew join CODE --from FILE -o REPLY")
    elif not decode_invite_code(code).addrs:
        print("meshcrew: note: no node runs here, so the code carries no address to reach you "
              "at; start one (meshcrew node, or the app) and make the invite again, or give "
              "the joiner a file with -o FILE.", file=session.err)
    return EXIT_OK


def _require_invite_from(member: Member, code: InviteCode, source: Path) -> None:
    """Refuse a ``join --from`` file that did not bring the code's space and invite: the join
    would go to the network instead, which is what the file was meant to spare."""
    try:
        invites = member.view(code.space_id).state.invites
    except UnknownName:
        raise InputError(f"{source} holds no record of the space this code invites to; ask the "
                         "inviter for the file written with the code (meshcrew invite SPACE -o "
                         "FILE).") from None
    if code.invite_id not in invites:
        raise InputError(f"{source} was written before this invite was made; ask the inviter "
                         "for the file written with the code (meshcrew invite SPACE -o FILE).")


def run_join(args: argparse.Namespace, session: Session) -> int:
    """Join with a code, optionally importing and exporting files around it."""
    code = decode_invite_code(args.code)  # a damaged code is refused before anything is imported
    source = file_path(args.source) if args.source else None
    output = file_path(args.output) if args.output else None
    with open_member(session) as member:
        imported = member.import_file(source) if source is not None else None
        if source is not None:
            _require_invite_from(member, code, source)
        space_id = member.join(args.code)
        summary = member.summary(space_id)
        exported = member.export_file([space_id], output) if output is not None else None
    if session.json:
        session.print_json({"space": space_id.hex(), "summary": summary.to_json(),
                            "imported": imported.to_json() if imported else None,
                            "exported": exported.to_json() if exported else None})
        return EXIT_OK
    session.print(f"Joined {summary.name or 'the space'} ({space_id.hex()}).")
    if summary.waiting_for_keys:
        session.print("You can read and post once whoever invited you rotates the keys (it "
                      "happens when their node receives your join).")
    if exported is not None:
        session.print(f"Wrote {exported.records} records to {exported.path}; the inviter runs: "
                      "meshcrew import FILE -o REPLY, and you then: meshcrew import REPLY")
    return EXIT_OK


def run_members(args: argparse.Namespace, session: Session) -> int:
    """List members and removal proposals."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        rows = member.members(space_id)
        removals = member.removals(space_id)
    session.answer({"space": space_id.hex(), "members": [m.to_json() for m in rows],
                    "removals": [r.to_json() for r in removals]},
                   *map(member_line, rows), *map(_removal_line, removals))
    return EXIT_OK


def _removal_line(removal: RemovalEntry) -> str:
    state = "in effect" if removal.effective else (
        f"{len(removal.consents)} of {removal.needed} consents needed")
    return (f"proposal {short(removal.id)}: remove {removal.member_name} ({state}; proposed "
            f"{local_time(removal.ts)})")


def _removal_json(member: Member, space_id: bytes, proposal: bytes,
                  record: bytes) -> dict[str, Any]:
    entry = next(r for r in member.removals(space_id) if r.id == proposal)
    return {"id": record.hex(), "removal": entry.to_json()}


def run_leave(args: argparse.Namespace, session: Session) -> int:
    """Leave a space."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        name = member.summary(space_id).name or space_id.hex()
        record = member.leave(space_id, expire_posts=args.expire_posts)
    taken = " Your past posts expire now on every member's node." if args.expire_posts else ""
    session.answer({"id": record.hex(), "space": space_id.hex(),
                    "expire_posts": args.expire_posts},
                   f"You left {name}. Anything written from now on is sealed to the others "
                   f"only.{taken}")
    return EXIT_OK


def run_remove(args: argparse.Namespace, session: Session) -> int:
    """Propose a removal."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        target = member.resolve_member(space_id, args.member)
        proposal = member.propose_removal(space_id, target)
        result = _removal_json(member, space_id, proposal, proposal)
    removal = result["removal"]
    session.answer(result, f"Proposed removing {removal['member_name']} (proposal "
                   f"{proposal.hex()[:8]}): {len(removal['consents'])} of {removal['needed']}"
                   " consents so far." + (" It is in effect." if removal["effective"] else ""))
    return EXIT_OK


def run_consent(args: argparse.Namespace, session: Session) -> int:
    """Consent to a removal proposal."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        proposal = member.resolve_proposal(space_id, args.proposal)
        record = member.consent(space_id, proposal)
        result = _removal_json(member, space_id, proposal, record)
    removal = result["removal"]
    state = (f"{removal['member_name']} is removed." if removal["effective"] else
             f"{len(removal['consents'])} of {removal['needed']} consents so far.")
    session.answer(result, f"Consented to removing {removal['member_name']}: {state}")
    return EXIT_OK


def run_rotate(args: argparse.Namespace, session: Session) -> int:
    """Rotate the keys if the membership changed."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        made = member.rotate(space_id)
        name = member.summary(space_id).name or space_id.hex()
    session.answer({"space": space_id.hex(), "rotated": [rid.hex() for rid in made]},
                   f"Rotated the keys of {name}: the current members can read what comes next, "
                   "no one else can." if made else
                   f"The keys of {name} are current; nothing to rotate.")
    return EXIT_OK
