"""Invites after they are made: ``invites`` lists them, ``invite revoke INVITE`` revokes one.

(``invite SPACE`` itself is in :mod:`meshcrew.cli.space_commands`, which hands ``invite revoke``
here.)
"""

from __future__ import annotations

import argparse

from meshcrew.cli.display import local_time, short
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
from meshcrew.service import InviteEntry


def register(commands: Commands) -> None:
    """Add ``invites``."""
    listing = add_command(
        commands, "invites", summary="list a space's invites and which can still admit",
        description="List the invites of a space, newest first: who made each, how many of its "
        "uses are taken, until when it works, and whether it is revoked. Revoke one with: "
        "meshcrew invite revoke INVITE.", handler=run_invites, json=True)
    with_examples(listing, 'meshcrew invites "Tuesday crew" --open')
    add_space_argument(listing)
    listing.add_argument("--open", action="store_true", dest="open_only",
                         help="only invites that can still admit someone")


def run_revoke(args: argparse.Namespace, session: Session) -> int:
    """``invite revoke INVITE``: revoke an invite named by its code or its id."""
    if args.output is not None or args.uses != 1:
        raise UsageError("invite revoke takes only the invite (its code or id) and --json",
                         "meshcrew invite")
    with open_member(session) as member:
        space_id, invite_id = member.resolve_invite(args.invite_ref)
        record = member.revoke_invite(space_id, invite_id)
    session.answer({"id": record.hex(), "space": space_id.hex(), "invite": invite_id.hex()},
                   f"Revoked the invite {short(invite_id)}: no one can join with it now.")
    return EXIT_OK


def run_invites(args: argparse.Namespace, session: Session) -> int:
    """List a space's invites."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        rows = [r for r in member.invites(space_id) if r.open or not args.open_only]
    session.answer({"space": space_id.hex(), "invites": [r.to_json() for r in rows]},
                   *(map(_invite_line, rows) if rows else
                     ["No invites." if not args.open_only else "No invite can admit anyone."]))
    return EXIT_OK


def _invite_line(row: InviteEntry) -> str:
    state = ("revoked" if row.revoked else "used up" if row.used >= row.uses
             else "open" if row.open else "expired")
    return (f"{short(row.id)}  by {row.inviter_name:<20} {row.used}/{row.uses} used  "
            f"until {local_time(row.expires_ms)}  {state}")
