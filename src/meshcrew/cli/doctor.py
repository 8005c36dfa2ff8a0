"""``meshcrew doctor``: check the home folder, the key file and the replica, one line per check."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from meshcrew import identity
from meshcrew.cli.parsing import EXIT_FAILURE, EXIT_OK, Commands, add_command
from meshcrew.cli.session import Session, not_yours, orphan_replica
from meshcrew.errors import MeshcrewError


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: a stable name: ``home``, ``key_file``, ``identity`` or ``replica``.
        ok: whether the check passed.
        detail: a sentence for the person (what was found, or what is wrong and what to do).
    """

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """The line printed for this check."""
        return f"{'ok' if self.ok else 'problem'}: {self.name}: {self.detail}"


def register(commands: Commands) -> None:
    """Add ``doctor``."""
    add_command(
        commands, "doctor",
        summary="check the home folder, key file and replica",
        description="Check that the home folder exists, is yours (with its files) and is "
        "closed to others, that the key file exists, has mode 0600 and loads (give "
        "--passphrase-file for a sealed key), and that the replica and its -wal/-shm files are "
        "closed to others and the replica is intact. Prints one line per check; exits 1 if "
        "any check found a problem. A check that depends on a failed one is not run. Changes "
        "nothing.",
        handler=run_doctor,
        json=True,
    )


def run_checks(session: Session) -> Iterator[Check]:
    """Run the checks in order, stopping where a later check depends on a failed one."""
    home = session.home
    if not home.path.is_dir():
        yield Check("home", False, f"no home folder at {home.path}; create one with: "
                    "meshcrew init --name NAME")
        return
    if not os.access(home.path, os.R_OK | os.W_OK | os.X_OK):
        yield Check("home", False, not_yours(home))
        return
    mode = stat.S_IMODE(home.path.stat().st_mode)
    foreign = home.not_mine()
    if home.open_to_others():
        yield Check("home", False, f"{home.path} is open to others (mode {mode:04o}); "
                    f"run: chmod 700 {home.path}")
    elif foreign:
        yield Check("home", False, f"{', '.join(map(str, foreign))} belong to another user, so "
                    "meshcrew cannot write there; if it ran there as another user (with sudo), "
                    f"run: {home.take_back()}")
    else:
        yield Check("home", True, f"{home.path} (mode {mode:04o})")

    yield from _check_key(session)
    yield _check_replica(session)


def _check_key(session: Session) -> Iterator[Check]:
    key_file = session.home.key_file
    if not key_file.is_file():
        if session.home.replica_file.exists():
            yield Check("key_file", False, orphan_replica(session))
        else:
            yield Check("key_file", False, f"no key file at {key_file}; create one with: "
                        "meshcrew init --name NAME")
        return
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        yield Check("key_file", False, f"{key_file} is open to others (mode {mode:04o}); "
                    f"run: chmod 600 {key_file}")
        return
    yield Check("key_file", True, f"{key_file} (mode {mode:04o})")
    try:
        person = identity.load(key_file, passphrase=session.passphrase())
    except MeshcrewError as exc:
        yield Check("identity", False, str(exc))
        return
    yield Check("identity", True, f"{person.name}, fingerprint {person.fingerprint}")


def _check_replica(session: Session) -> Check:
    # Imported here so the identity commands do not load the replica's code.
    from meshcrew.store import check_replica

    try:
        problems = check_replica(session.home)
    except MeshcrewError as exc:
        return Check("replica", False, str(exc))
    if problems:
        return Check("replica", False, "; ".join(problems))
    path = session.home.replica_file
    if not path.exists():
        return Check("replica", True, "no replica yet (nothing to check)")
    mode = stat.S_IMODE(path.stat().st_mode)
    return Check("replica", True, f"{path} is intact (mode {mode:04o})")


def run_doctor(args: argparse.Namespace, session: Session) -> int:
    """Print one line per check; exit 1 if any failed."""
    checks = list(run_checks(session))
    healthy = all(check.ok for check in checks)
    if session.json:
        session.print_json({
            "ok": healthy,
            "home": str(session.home.path),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        })
    else:
        for check in checks:
            session.print(check.line())
    return EXIT_OK if healthy else EXIT_FAILURE
