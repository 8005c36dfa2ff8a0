"""Posts and what they add up to: ``checkin``, ``reply``, ``react``, ``ask``, ``offer``,
``gathering``, ``followup``, ``profile``, ``looking-for-crew``, ``log``, ``board`` and ``rhythm``.

Each handler resolves what the person typed and makes one call of the member service.
"""

from __future__ import annotations

import argparse

from meshcrew.cli.display import local_time, log_line, one_line, short, sparkline
from meshcrew.cli.parsing import (
    EXIT_OK,
    Commands,
    Handler,
    add_command,
    add_space_argument,
    with_examples,
)
from meshcrew.cli.service_access import open_member
from meshcrew.cli.session import Session
from meshcrew.cli.values import compass_scores, time_ms
from meshcrew.errors import InputError
from meshcrew.spaces import COMPASS_SCALES, PostKind

_RECORD_HELP = "the post's id, or its first hex digits as meshcrew log shows them"


def register(commands: Commands) -> None:
    """Add the commands that post and read posts."""
    scales = ", ".join(scale.key for scale in COMPASS_SCALES)
    checkin = _writer(commands, "checkin", "check in: how you are arriving",
                      "Post a check-in to a crew or dyad: how you are arriving, your energy "
                      "(1 low to 5 high), optionally compass scores and an ask for support. "
                      "Prints the check-in's id.", run_checkin, space=True)
    with_examples(checkin,
                  'meshcrew checkin "Tuesday crew" --text "Tired but glad to be here" --energy 2',
                  'meshcrew checkin "Tuesday crew" --text "A steady week" --compass belonging=4 '
                  '--ask "a walk on Friday?"')
    checkin.add_argument("--text", required=True, metavar="TEXT",
                         help="how you are arriving (1-2000 characters)")
    checkin.add_argument("--energy", type=int, default=3, metavar="N",
                         help="your energy, 1 (low) to 5 (high); default 3")
    checkin.add_argument("--compass", action="append", metavar="NAME=N",
                         help=f"a compass score, 1 (murky waters) to 5 (north star); repeat for "
                         f"several. Scales: {scales}")
    checkin.add_argument("--ask", metavar="TEXT", help="an ask for support (up to 1000 "
                         "characters); it stays open until you close it with a follow-up")

    reply = _writer(commands, "reply", "reply to a post",
                    "Reply to a post (a check-in, an ask, ...). Prints the reply's id.",
                    run_reply, space=False)
    with_examples(reply,
                  'meshcrew reply 3f9a --text "Sending you strength"    # 3f9a: the post\'s id '
                  "start, from meshcrew log")
    reply.add_argument("--text", required=True, metavar="TEXT", help="the reply (1-2000 "
                       "characters)")

    react = _writer(commands, "react", "react to a post (an emoji, or a word like heard)",
                    "React to a post with an emoji or a short word such as heard. Prints the "
                    "reaction's id.", run_react, space=False)
    with_examples(react, "meshcrew react 3f9a heard")
    react.add_argument("emoji", metavar="EMOJI", help="the reaction (1-16 characters)")

    for kind, what in (("ask", "ask for support"), ("offer", "offer help, skills or things")):
        board_post = _writer(commands, kind, f"{what} on the board",
                             f"Post an {kind} to a space's board (a congregation's or a crew's)."
                             " Prints its id.", run_board_post, space=True)
        board_post.set_defaults(kind=kind)
        with_examples(board_post, {
            "ask": 'meshcrew ask Riverside --title "A van on Saturday" --text "moving boxes, '
                   'two hours"',
            "offer": 'meshcrew offer Riverside --title "Spare seedlings" --text "tomatoes '
                     'and kale"'}[kind])
        board_post.add_argument("--title", required=True, metavar="TEXT",
                                help="a short title (1-120 characters)")
        board_post.add_argument("--text", default="", metavar="TEXT",
                                help="more detail (up to 2000 characters)")

    gathering = _writer(commands, "gathering", "announce a gathering of a congregation",
                        "Announce a gathering to a congregation: a title, when and where (a "
                        "place or a link). Prints its id.", run_gathering, space=True)
    with_examples(gathering,
                  'meshcrew gathering Riverside --title "Spring picnic" --when "2027-04-10 12:00" '
                  '--where "the park by the river"')
    gathering.add_argument("--title", required=True, metavar="TEXT",
                           help="what it is (1-120 characters)")
    gathering.add_argument("--when", required=True, metavar="TIME",
                           help="when it starts: 2026-02-01 18:00 (local time) or with an "
                           "offset, 2026-02-01T18:00+02:00")
    gathering.add_argument("--where", default="", metavar="PLACE",
                           help="a place or a link (up to 300 characters)")

    followup = _writer(commands, "followup", "follow up on an ask or offer",
                       "Follow up on an ask or an offer (or a check-in's ask). The author of "
                       "what it follows can close it with --closes. Prints its id.",
                       run_followup, space=False)
    with_examples(followup, 'meshcrew followup 3f9a --text "Found one, thank you!" --closes')
    followup.add_argument("--text", default="", metavar="TEXT",
                          help="the follow-up (up to 2000 characters)")
    followup.add_argument("--closes", action="store_true",
                          help="close the ask or offer (only its author's follow-up closes it)")

    profile = _writer(commands, "profile", "change your display name or bio in a space",
                      "Post your profile in a space: the display name and short bio its members "
                      "see (your latest profile counts). What you leave out stays as it is. "
                      "Prints the profile's id.", run_profile, space=True)
    with_examples(profile, 'meshcrew profile "Tuesday crew" --bio "gardener, new to the city"')
    profile.add_argument("--name", metavar="NAME", help="your display name here (1-64 "
                         "characters)")
    profile.add_argument("--bio", metavar="TEXT", help="a short bio (up to 280 characters; "
                         "an empty one clears it)")

    looking = _writer(commands, "looking-for-crew", "tell a congregation you look for a crew",
                      "Tell a congregation that you are looking for a crew (or, with --stop, "
                      "that you no longer are); the board lists who is looking. Your latest "
                      "word counts. Prints its id.", run_looking, space=True)
    with_examples(looking,
                  'meshcrew looking-for-crew Riverside --note "evenings; a crew about caring for '
                  'parents"')
    looking.add_argument("--note", default="", metavar="TEXT",
                         help="what kind of crew, when you are free, ... (up to 500 characters)")
    looking.add_argument("--stop", action="store_true",
                         help="you are no longer looking (takes you off the board)")

    log = add_command(commands, "log", summary="show a space's posts, oldest first",
                      description="Show what you can read of a space, oldest first: posts, "
                      "and who joined, left or rotated the keys. Ids are shortened; any "
                      "unique start of 4 or more hex digits works where a command wants one.",
                      handler=run_log, json=True)
    with_examples(log, 'meshcrew log "Tuesday crew" --posts')
    add_space_argument(log)
    log.add_argument("--posts", action="store_true",
                     help="only posts, not membership records or posts you hold no key for")

    board = add_command(commands, "board", summary="show a space's asks, offers and gatherings",
                        description="Show the asks and offers of a space with their follow-"
                        "ups, upcoming gatherings, crew cards and who is looking for a crew.",
                        handler=run_board, json=True)
    with_examples(board, "meshcrew board Riverside")
    add_space_argument(board)

    rhythm = add_command(commands, "rhythm", summary="who has checked in this cycle",
                         description="Show the current check-in cycle of a crew or dyad: who "
                         "has checked in, who has not yet, and each member's energy over time.",
                         handler=run_rhythm, json=True)
    with_examples(rhythm, 'meshcrew rhythm "Tuesday crew"')
    add_space_argument(rhythm)


def _writer(commands: Commands, name: str, summary: str, description: str,
            handler: Handler, *, space: bool) -> argparse.ArgumentParser:
    parser = add_command(commands, name, summary=summary, description=description,
                         handler=handler, json=True)
    if space:
        add_space_argument(parser)
    else:
        parser.add_argument("record", metavar="RECORD", help=_RECORD_HELP)
    return parser



def run_checkin(args: argparse.Namespace, session: Session) -> int:
    """Post a check-in."""
    compass = compass_scores(args.compass)
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        record = member.checkin(space_id, text=args.text, energy=args.energy, compass=compass,
                                ask=args.ask)
        session.answer_written(space_id, record, "Checked in")
    return EXIT_OK


def run_reply(args: argparse.Namespace, session: Session) -> int:
    """Reply to a post."""
    with open_member(session) as member:
        target = member.resolve_record(args.record, posts_only=True)
        space_id = member.thread(target).post.space
        session.answer_written(space_id, member.reply(target, text=args.text), "Replied")
    return EXIT_OK


def run_react(args: argparse.Namespace, session: Session) -> int:
    """React to a post."""
    with open_member(session) as member:
        target = member.resolve_record(args.record, posts_only=True)
        space_id = member.thread(target).post.space
        session.answer_written(space_id, member.react(target, emoji=args.emoji),
                               f"Reacted {args.emoji}")
    return EXIT_OK


def run_board_post(args: argparse.Namespace, session: Session) -> int:
    """Post an ask or an offer."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        post = member.make_post(args.kind, title=args.title, text=args.text)
        session.answer_written(space_id, member.post(space_id, post),
                               f"Posted your {args.kind} on the board")
    return EXIT_OK


def run_gathering(args: argparse.Namespace, session: Session) -> int:
    """Announce a gathering."""
    when = time_ms(args.when)
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        post = member.make_post(PostKind.GATHERING, title=args.title, when_ms=when,
                                where=args.where)
        session.answer_written(space_id, member.post(space_id, post),
                               "Announced the gathering")
    return EXIT_OK


def run_followup(args: argparse.Namespace, session: Session) -> int:
    """Follow up on an ask or offer."""
    with open_member(session) as member:
        target = member.resolve_record(args.record, posts_only=True)
        space_id = member.thread(target).post.space
        post = member.make_post(PostKind.FOLLOWUP, to=target, text=args.text,
                                closes=args.closes)
        session.answer_written(space_id, member.post(space_id, post), "Followed up")
    return EXIT_OK


def run_profile(args: argparse.Namespace, session: Session) -> int:
    """Post a profile: the name or bio given, the rest as it stands."""
    if args.name is None and args.bio is None:
        raise InputError("Give --name, --bio or both: what your profile should say.")
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        me = next((m for m in member.members(space_id) if m.is_me), None)
        name = args.name
        if name is None:
            # Without a profile, members() shows the fingerprint: not a name to keep.
            if me is None or me.name == me.fingerprint:
                raise InputError("You have no profile in this space yet; give --name.")
            name = me.name
        bio = args.bio if args.bio is not None else (me.bio if me is not None else "")
        post = member.make_post(PostKind.PROFILE, name=name, bio=bio)
        session.answer_written(space_id, member.post(space_id, post),
                               "Posted your profile")
    return EXIT_OK


def run_looking(args: argparse.Namespace, session: Session) -> int:
    """Say whether this member is looking for a crew."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        post = member.make_post(PostKind.LOOKING_FOR_CREW, looking=not args.stop,
                                note=args.note)
        session.answer_written(space_id, member.post(space_id, post),
                               "Told the congregation")
    return EXIT_OK


def run_log(args: argparse.Namespace, session: Session) -> int:
    """Show the log."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        entries = member.log(space_id, events=not args.posts)
    session.answer({"space": space_id.hex(), "records": [e.to_json() for e in entries]},
                   *map(log_line, entries))
    return EXIT_OK


def run_board(args: argparse.Namespace, session: Session) -> int:
    """Show the board."""
    with open_member(session) as member:
        board = member.board(member.resolve_space(args.space))
    if session.json:
        session.print_json(board.to_json())
        return EXIT_OK
    for item in board.items:
        state = "closed" if item.closed else "open"
        session.print(f"{short(item.post.id)}  {item.post.kind:<7} {state:<6} "
                      f"{one_line(item.title, 60)!r} by {item.post.author_name}")
        for answer in item.followups:
            session.print(f"    {log_line(answer)}")
    for gathering in board.gatherings:
        fields = gathering.fields
        session.print(f"{short(gathering.id)}  gathering {one_line(fields['title'], 60)!r} on "
                      f"{local_time(fields['when_ms'])} at {one_line(fields['where'], 60)}")
    for card in board.crew_cards:
        state = "open" if card.fields["open"] else "closed"
        session.print(f"crew {card.fields['name']} ({state}): {one_line(card.fields['note'])}")
    for seeker in board.looking_for_crew:
        session.print(f"{seeker.author_name} is looking for a crew: "
                      f"{one_line(seeker.fields['note'])}")
    if not (board.items or board.gatherings or board.crew_cards or board.looking_for_crew):
        session.print("The board is empty.")
    return EXIT_OK


def run_rhythm(args: argparse.Namespace, session: Session) -> int:
    """Show the current cycle and energy over time."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        cycle = member.cycle(space_id)
        energy = member.energy(space_id)
        names = {m.key: m.name for m in member.members(space_id)}
    if session.json:
        session.print_json({**cycle.to_json(), "energy": {
            key.hex(): [[ts, score] for ts, score in points] for key, points in energy.items()}})
        return EXIT_OK
    session.print(f"Cycle {local_time(cycle.start_ms)} to {local_time(cycle.end_ms)} "
                  f"({cycle.rhythm})")
    for checkin in cycle.checkins:
        session.print(f"  checked in  {checkin.author_name:<20} energy "
                      f"{checkin.fields['energy']}  {local_time(checkin.ts)}")
    for missing in cycle.missing:
        session.print(f"  not yet     {missing.name}")
    for key, points in energy.items():
        session.print(f"  energy      {names.get(key, short(key)):<20} "
                      f"{sparkline([score for _, score in points])}")
    return EXIT_OK
