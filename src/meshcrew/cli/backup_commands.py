"""``meshcrew backup FILE`` and ``meshcrew restore FILE``: the whole member in one sealed file.

The backup's passphrase is its own (not the key file's, which ``--passphrase-file`` gives): it
comes from ``--backup-passphrase-file``, else ``$MESHCREW_BACKUP_PASSPHRASE_FILE``, else it is
asked for on the terminal (twice when making a backup).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from meshcrew import identity
from meshcrew.backup import DEFAULT_KDF_COST, KDF_COSTS, MIN_PASSPHRASE_CHARS, check_new_passphrase
from meshcrew.cli.display import short
from meshcrew.cli.parsing import EXIT_OK, Commands, add_command, with_examples
from meshcrew.cli.service_access import wall_clock_ms
from meshcrew.cli.session import Session
from meshcrew.cli.values import file_path
from meshcrew.errors import InputError, MeshcrewError

BACKUP_PASSPHRASE_ENV = "MESHCREW_BACKUP_PASSPHRASE_FILE"
SYNC_HINT = "Start the node (meshcrew node, or meshcrew) to sync what your crew wrote since."


def register(commands: Commands) -> None:
    """Add ``backup`` and ``restore``."""
    backup = add_command(
        commands, "backup", summary="back up the identity, replica and peer book to a file",
        description="Write the key file (as stored: a protected key stays protected), every "
        "accepted record of every space, and the peer book to FILE, encrypted with a "
        "passphrase of its own (argon2id and XChaCha20-Poly1305), of at least "
        f"{MIN_PASSPHRASE_CHARS} characters: a short sentence you will remember works well. "
        "Works while the node runs. The file is written atomically with mode 0600.",
        handler=run_backup, json=True)
    with_examples(backup, "meshcrew backup ~/meshcrew-backup.mcb")
    backup.add_argument("file", metavar="FILE", help="the file to write (replaced if it exists)")
    _add_passphrase_option(backup)
    backup.add_argument("--kdf-cost", choices=sorted(KDF_COSTS), default=DEFAULT_KDF_COST,
                        help="how hard guessing the passphrase is made: interactive (64 MiB), "
                        f"moderate (256 MiB) or sensitive (1 GiB); default {DEFAULT_KDF_COST}. "
                        "The file records it")

    restore = add_command(
        commands, "restore", summary="restore a backup into this home folder",
        description="Restore a file made by meshcrew backup into the home folder (usually a "
        "new, empty one): the key file, every record (each verified again) and the peer "
        "book. Refused if a node is running there or the home holds another identity; the "
        "same identity's records are merged. Then start the node to sync what is newer.",
        handler=run_restore, json=True)
    with_examples(restore,
                  "meshcrew restore ~/meshcrew-backup.mcb    # on a new laptop",
                  "meshcrew restore ~/meshcrew-backup.mcb --as-device    # your old laptop still "
                  "runs")
    restore.add_argument("file", metavar="FILE", help="the backup file")
    restore.add_argument("--as-device", action="store_true",
                         help="your laptop with the member key still runs: make this laptop a "
                         "new device of yours (its own key, certified by the member key read "
                         "from the backup; the member key is not kept here), so the two never "
                         "fork")
    _add_passphrase_option(restore)


def _add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backup-passphrase-file", metavar="FILE",
                        help="a file holding the backup's passphrase, one trailing newline "
                        f"ignored (default: ${BACKUP_PASSPHRASE_ENV}, else asked on the "
                        "terminal)")


def backup_passphrase(args: argparse.Namespace, session: Session, *, confirm: bool) -> bytes:
    """The backup's passphrase: from its file, else asked on the terminal. A new backup's
    (``confirm``) must be hard enough to guess (:func:`~meshcrew.backup.check_new_passphrase`);
    an existing backup's is taken as it is, so one made before the rule still restores.

    Raises:
        InputError: if there is neither, the two typed differ, or it is empty.
        IdentityError: if the passphrase file cannot be read or is empty.
        BackupError: if a new backup's passphrase is too easy to guess.
    """
    given = args.backup_passphrase_file or os.environ.get(BACKUP_PASSPHRASE_ENV)
    if given:
        # Read exactly as the key file's passphrase is (one trailing newline dropped).
        from_file = dataclasses.replace(session, passphrase_file=Path(given).expanduser())
        passphrase = from_file.passphrase()
        assert passphrase is not None
        if confirm:
            check_new_passphrase(passphrase)
        return passphrase
    if not sys.stdin.isatty():
        raise InputError("Give the backup's passphrase with --backup-passphrase-file FILE (or "
                         f"{BACKUP_PASSPHRASE_ENV}); there is no terminal to ask on.")
    prompt = (f"Backup passphrase (at least {MIN_PASSPHRASE_CHARS} characters): " if confirm
              else "Backup passphrase: ")
    typed = getpass.getpass(prompt)
    if not typed:
        raise InputError("The backup's passphrase is empty; nothing was done.")
    if confirm:
        check_new_passphrase(typed.encode("utf-8"))  # before asking for it again
    if confirm and getpass.getpass("Again, to be sure: ") != typed:
        raise InputError("The two passphrases differ; nothing was written.")
    return typed.encode("utf-8")


class ProgressLine:
    """``Backing up: 1,200/40,000 records`` rewritten in place on a terminal; silent otherwise."""

    def __init__(self, err: TextIO, verb: str) -> None:
        self._err = err
        self._verb = verb
        self._shown = False
        self._terminal = err.isatty()

    def __call__(self, done: int, total: int) -> None:
        """Show the count (only on a terminal)."""
        if self._terminal:
            self._err.write(f"\r{self._verb}: {done:,}/{total:,} records")
            self._err.flush()
            self._shown = True

    def end(self) -> None:
        """End the line, if one was shown."""
        if self._shown:
            self._err.write("\n")
            self._shown = False


def run_backup(args: argparse.Namespace, session: Session) -> int:
    """Write the backup file."""
    from meshcrew.node.home_backup import back_up, check_backup_target  # the replica's code

    output = file_path(args.file)
    person = session.load_identity()
    check_backup_target(output)  # before the passphrase is typed twice
    passphrase = backup_passphrase(args, session, confirm=True)
    progress = ProgressLine(session.err, "Backing up")
    try:
        report = back_up(session.home, output, person, passphrase, cost=KDF_COSTS[args.kdf_cost],
                         now_ms=wall_clock_ms(), on_progress=progress)
    finally:
        progress.end()
    if session.json:
        session.print_json(report.to_json())
    else:
        book = " and the peer book" if report.peer_book else ""
        session.print(f"Backed up {person.name}: the key file{book} and {report.records:,} "
                      f"records of {report.spaces} space{'s' if report.spaces != 1 else ''} to "
                      f"{report.path} ({report.bytes:,} bytes, mode 0600).")
        session.print("Keep the passphrase apart from the file: without it the backup cannot "
                      "be opened.")
    return EXIT_OK


def run_restore(args: argparse.Namespace, session: Session) -> int:
    """Restore a backup file into the home folder."""
    from meshcrew.node.home_backup import check_backup_file, restore  # the replica's code

    source = file_path(args.file)
    check_backup_file(source)  # missing, not a backup, damaged: before asking the passphrase
    passphrase = backup_passphrase(args, session, confirm=False)
    progress = ProgressLine(session.err, "Restoring")
    try:
        report = restore(session.home, source, passphrase, key_passphrase=_key_passphrase(session),
                         now_ms=wall_clock_ms(), on_progress=progress,
                         as_device=args.as_device)
    finally:
        progress.end()
    if session.json:
        session.print_json(report.to_json())
        return EXIT_OK
    key_line = ("the key file (mode 0600)" if report.key_file == "written"
                else "the key file already here (kept)" if report.key_file == "kept"
                else f"a new device key ({identity.fingerprint(report.device or b'')}), "
                f"certified in {report.certified} space(s) by the member key")
    session.print(f"Restored {report.name} ({report.to_json()['fingerprint']}) into "
                  f"{session.home.path}: {key_line}, {report.records:,} records of "
                  f"{report.spaces} space{'s' if report.spaces != 1 else ''} ({report.accepted:,} "
                  f"new, {report.duplicates:,} already held), {report.peers} known "
                  f"peer{'s' if report.peers != 1 else ''}.")
    for entry in report.rejected:
        record = short(entry.record_id) if entry.record_id else "(too large)"
        session.print(f"Refused record {record}: {entry.sentence}"
                      f"{f' ({entry.detail})' if entry.detail else ''}")
    if report.pending:
        session.print(f"{report.pending} records wait for earlier ones; the crew will send them.")
    session.print(SYNC_HINT)
    return EXIT_OK


def _key_passphrase(session: Session) -> bytes | None:
    # Only needed when the home already holds a protected key file that differs from the
    # backup's; a bad passphrase file should not stop a restore into an empty home.
    try:
        return session.passphrase()
    except MeshcrewError:
        if session.home.key_file.exists():
            raise
        return None
