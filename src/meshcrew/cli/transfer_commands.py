"""Records in and out by file, and what was refused: ``export``, ``import`` and ``rejects``.

Each handler resolves what the person typed and makes one call of the member service (two for
``import -o``: the import, then the reply file).
"""

from __future__ import annotations

import argparse

from meshcrew.cli.display import local_time, short
from meshcrew.cli.parsing import EXIT_OK, Commands, add_command, with_examples
from meshcrew.cli.service_access import open_member
from meshcrew.cli.session import Session
from meshcrew.cli.values import file_path
from meshcrew.errors import InputError
from meshcrew.service import IngestReport, RejectedEntry

MAX_LIMIT = 1_000_000_000
"""The largest ``rejects --limit`` used; a larger one lists everything just the same."""


def register(commands: Commands) -> None:
    """Add ``export``, ``import`` and ``rejects``."""
    export = add_command(
        commands, "export", summary="write a space's records to a file",
        description="Write every record of one or more spaces to FILE (written atomically, "
        "mode 0600), to carry to another member by hand or keep as a backup. Crew content "
        "stays encrypted in it; who is a member, and when they wrote, does not.",
        handler=run_export, json=True)
    with_examples(export, 'meshcrew export "Tuesday crew" -o crew.mcr')
    export.add_argument("spaces", nargs="*", metavar="SPACE",
                        help="the spaces (name, or id or its start)")
    export.add_argument("--all", action="store_true", help="export every space in the replica")
    export.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="the file to write (replaced if it exists)")

    imp = add_command(
        commands, "import", summary="import records from a file",
        description="Import the records in FILE (made by meshcrew export, invite -o or join -o). "
        "Every record is verified; refused ones are counted and listed by meshcrew rejects. "
        "If the file holds the join of someone you invited, the keys are rotated so they can "
        "read; give them the file written with -o.", handler=run_import, json=True)
    with_examples(imp, "meshcrew import crew.mcr")
    imp.add_argument("file", metavar="FILE", help="the file to import")
    imp.add_argument("-o", "--output", metavar="FILE",
                     help="then write the spaces the file touched (with any new keys) to FILE, "
                     "to give back to whoever sent it")

    rejects = add_command(
        commands, "rejects", summary="list refused records and why",
        description="List the records that were refused, newest first, with the reason: by the "
        "replica (bad signature, broken chain, fork, ...) or by the space rules (not a member, "
        "invite used up, unreadable, ...).", handler=run_rejects, json=True)
    rejects.add_argument("space", nargs="?", metavar="SPACE",
                         help="only this space's refusals by the space rules")
    rejects.add_argument("--limit", type=int, default=100, metavar="N",
                         help="show at most N (default 100; a large N shows all)")


def run_export(args: argparse.Namespace, session: Session) -> int:
    """Write spaces to a file."""
    if bool(args.spaces) == bool(args.all):
        raise InputError("Name the spaces to export, or give --all (not both).")
    output = file_path(args.output)
    with open_member(session) as member:
        chosen = ([s.id for s in member.spaces()] if args.all
                  else [member.resolve_space(text) for text in args.spaces])
        report = member.export_file(chosen, output)
    if session.json:
        session.print_json(report.to_json())
    else:
        session.print(f"Wrote {report.records} records of {len(report.spaces)} "
                      f"space{'s' if len(report.spaces) != 1 else ''} to {report.path}.")
    return EXIT_OK


def run_import(args: argparse.Namespace, session: Session) -> int:
    """Import a file (and write a reply with -o)."""
    source = file_path(args.file)
    output = file_path(args.output) if args.output else None
    with open_member(session) as member:
        report = member.import_file(source)
        exported = (member.export_file(report.spaces, output)
                    if output is not None and report.spaces else None)
        names = {sid: member.summary(sid).name or short(sid) for sid in report.rotated}
    if session.json:
        session.print_json({**report.to_json(), "file": str(source),
                            "exported": exported.to_json() if exported else None})
        return EXIT_OK
    session.print(_import_line(report, str(source)))
    for sid in report.rotated:
        session.print(f"Rotated the keys of {names[sid]} so that whoever joined can read.")
    if exported is not None:
        session.print(f"Wrote {exported.records} records to {exported.path}; give it back to "
                      "whoever sent you the file (they run: meshcrew import FILE).")
    elif output is not None:
        session.print(f"Nothing new, so nothing written to {output}.")
    return EXIT_OK


def _import_line(report: IngestReport, source: str) -> str:
    refused = len(report.rejected) + len(report.refused)
    tail = " (see: meshcrew rejects)" if refused else ""
    return (f"Imported {source}: {len(report.accepted)} accepted, {len(report.pending)} "
            f"pending, {report.duplicates} already held, {len(report.rejected)} rejected, "
            f"{len(report.refused)} refused by the space rules{tail}.")


def run_rejects(args: argparse.Namespace, session: Session) -> int:
    """List refused records."""
    if args.limit < 1:
        raise InputError("--limit must be at least 1.")
    # SQLite takes 64-bit limits; anything above what could ever be listed means "all".
    limit = min(args.limit, MAX_LIMIT)
    with open_member(session) as member:
        space_id = member.resolve_space(args.space) if args.space is not None else None
        rows = member.rejected(space_id, limit=limit)
    if session.json:
        session.print_json({"rejects": [row.to_json() for row in rows]})
    elif not rows:
        session.print("Nothing was refused.")
    else:
        for row in rows:
            session.print(_reject_line(row))
    return EXIT_OK


def _reject_line(row: RejectedEntry) -> str:
    record = short(row.record_id) if row.record_id else "(too large)"
    where = f" from {row.sender}" if row.sender else ""
    detail = f" ({row.detail})" if row.detail else ""
    return (f"{local_time(row.at_ms)}  {record}  {row.source:<5}  {row.reason}{where}: "
            f"{row.sentence}{detail}")
