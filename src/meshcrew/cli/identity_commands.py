"""``meshcrew init`` and ``meshcrew whoami``: create and show the member identity."""

from __future__ import annotations

import argparse
import stat
from typing import Any

from meshcrew import identity
from meshcrew.cli.parsing import (
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    positive_number,
    with_examples,
)
from meshcrew.cli.session import Session, orphan_replica
from meshcrew.errors import HomeError, IdentityError


def register(commands: Commands) -> None:
    """Add ``init`` and ``whoami``."""
    init = add_command(
        commands, "init",
        summary="create the home folder and a new identity",
        description="Create the home folder (mode 0700) and a new ed25519 identity in it "
        "(key file mode 0600). With --passphrase-file the key is sealed with that passphrase "
        "(argon2id). Refuses if the home folder already holds an identity.",
        handler=run_init,
        json=True,
    )
    with_examples(init,
                  "meshcrew init --name Ada",
                  "meshcrew init --link    # on a second laptop of yours")
    init.add_argument("--name",
                      help=f"your display name, as crewmates will see it "
                      f"(1 to {identity.MAX_NAME_CHARS} characters); not needed with --link")
    init.add_argument("--link", action="store_true",
                      help="this is another device of mine: make its own key, show a link code "
                      "(and a QR code) and wait until `meshcrew devices add CODE` on the laptop "
                      "that holds your member key links it")
    init.add_argument("--listen", action="append", metavar="MULTIADDR",
                      help="with --link: where to listen while waiting (default: every IPv4 "
                      "interface)")
    init.add_argument("--wait", type=positive_number, default=900.0, metavar="SECONDS",
                      help="with --link: how long to wait for the link (default 900)")

    add_command(
        commands, "whoami",
        summary="show this identity: name, key, fingerprint, peer id",
        description="Show the identity in the home folder: display name, public key (hex), "
        "fingerprint (for comparing out loud) and libp2p peer id.",
        handler=run_whoami,
        json=True,
    )


def identity_summary(person: identity.Identity) -> dict[str, Any]:
    """The ``whoami --json`` object: keys ``name``, ``key``, ``fingerprint``, ``peer_id``."""
    return {
        "name": person.name,
        "key": person.public_key.hex(),
        "fingerprint": person.fingerprint,
        "peer_id": person.peer_id,
    }


def run_init(args: argparse.Namespace, session: Session) -> int:
    """Create the home folder and identity; print what was made."""
    if args.link:
        from meshcrew.cli.device_commands import run_init_link

        return run_init_link(args, session)
    if args.name is None:
        raise UsageError("init needs --name NAME (or --link, for another device of yours)",
                         "meshcrew init")
    # Everything that can be refused is checked before anything is written.
    name = identity.check_name(args.name)
    passphrase = session.passphrase()
    home = session.home
    if home.path.is_dir():
        session.require_home()  # one this user may use
    if home.key_file.exists():
        raise IdentityError(f"The home folder {home.path} already holds an identity; "
                            "refusing to replace it (use another --home for a second one).")
    if home.replica_file.exists():
        raise IdentityError(orphan_replica(session))
    existed = home.path.is_dir()
    if existed and home.open_to_others():
        mode = stat.S_IMODE(home.path.stat().st_mode)
        raise HomeError(f"The home folder {home.path} is open to others (mode {mode:04o}); "
                        f"run: chmod 700 {home.path}")
    home.ensure()
    person = identity.Identity.generate(name)
    try:
        identity.save(person, home.key_file, passphrase=passphrase)
    except IdentityError:
        if not existed:  # leave no empty home folder behind a failed init
            home.path.rmdir()
        raise

    sealed = ["  key file     sealed with your passphrase"] if passphrase is not None else []
    session.answer({**identity_summary(person), "home": str(home.path)},
                   f"Created the identity of {person.name}.",
                   f"  fingerprint  {person.fingerprint}", f"  home folder  {home.path}", *sealed)
    return EXIT_OK


def run_whoami(args: argparse.Namespace, session: Session) -> int:
    """Print the identity."""
    person = session.load_identity()
    summary = identity_summary(person)
    session.answer(summary, person.name, f"  fingerprint  {summary['fingerprint']}",
                   f"  key          {summary['key']}", f"  peer id      {summary['peer_id']}",
                   f"  home folder  {session.home.path}")
    return EXIT_OK
