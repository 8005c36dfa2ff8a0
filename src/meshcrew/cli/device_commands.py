"""``meshcrew init --link``, ``meshcrew devices``, ``devices add CODE``, ``devices revoke``.

A member's laptops each have a key of their own; the member key stays on the first one (see
docs/spaces.md, *A member's devices*). The new laptop runs ``init --link`` and shows a link
code; the first laptop runs ``devices add CODE``; both show the other side's fingerprint.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import cast

from meshcrew import identity
from meshcrew.cli.parsing import EXIT_OK, Commands, UsageError, add_command, with_examples
from meshcrew.cli.service_access import open_member
from meshcrew.cli.session import Session, orphan_replica
from meshcrew.errors import IdentityError, InputError, JoinRefused

LINK_WAIT_S = 900.0
"""How long ``init --link`` waits for the first laptop by default."""


def register(commands: Commands) -> None:
    """Add ``devices``, ``devices add`` and ``devices revoke``."""
    devices = add_command(
        commands, "devices", summary="list your devices; link or revoke one",
        description="List the devices of your member identity: the one that holds your member "
        "key (made by meshcrew init) and the laptops linked to it, with when each was linked "
        "and last heard of. `devices add CODE` links a new laptop (run `meshcrew init --link` "
        "on it first); `devices revoke DEVICE` shuts one out (it reads nothing written after).",
        handler=run_list, json=True)
    group = cast("Commands", devices.add_subparsers(title="commands", metavar="COMMAND",
                                                    dest="devices_command"))
    add = add_command(
        group, "add", summary="link a new laptop from its link code",
        description="Approve a new laptop of yours over the network or the LAN: it shows a link "
        "code (meshcrew init --link); this laptop must hold your member key. Compare the "
        "fingerprints: the new laptop shows yours, this command shows the new laptop's. The "
        "new laptop then receives your spaces, their keys and history.",
        handler=run_add, json=True)
    with_examples(add, "meshcrew devices add mcl1-...    # the code your new laptop shows")
    add.add_argument("code", metavar="CODE", help="the link code (starts with mcl1-)")
    revoke = add_command(
        group, "revoke", summary="revoke one of your devices (a lost laptop)",
        description="Revoke a device in every space it is in and rotate the keys there: it "
        "reads nothing written after. Run it on the laptop that holds your member key.",
        handler=run_revoke, json=True)
    with_examples(revoke,
                  "meshcrew devices revoke 4DSY-X2GP    # its fingerprint, from meshcrew devices")
    revoke.add_argument("device", metavar="DEVICE",
                        help="the device's fingerprint or key (or their start), as listed")


def run_list(args: argparse.Namespace, session: Session) -> int:
    """List this member's devices."""
    with open_member(session) as member:
        rows = member.devices()
    if session.json:
        session.print_json({"devices": [row.to_json() for row in rows]})
        return EXIT_OK
    from meshcrew.cli.display import local_time

    for row in rows:
        what = "member key" if row.first else "linked " + (
            local_time(row.linked_ts) if row.linked_ts else "")
        seen = local_time(row.last_ts) if row.last_ts else "never"
        state = "  REVOKED" if row.revoked else ""
        session.print(f"{row.fingerprint}  {what:<28} last seen {seen}{state}")
    return EXIT_OK


def run_add(args: argparse.Namespace, session: Session) -> int:
    """Link the device of a link code."""
    from meshcrew.node.linking import decode_link_code
    from meshcrew.node.reports import LinkResult

    code = decode_link_code(args.code)
    if not session.json:
        session.print(f"Linking the device {identity.fingerprint(code.device)}: check that the "
                      "new laptop shows this fingerprint.")
    from meshcrew.cli.node_link import NodeMember, OfflineMember

    with open_member(session) as member:
        linker = cast("NodeMember | OfflineMember", member)
        result: LinkResult = linker.link_device(args.code)
    session.answer(result.to_json(),
                   f"Linked {identity.fingerprint(result.device)} as a device of "
                   f"{result.member_name} in {result.spaces} space(s); its keys are on their way.")
    return EXIT_OK


def run_revoke(args: argparse.Namespace, session: Session) -> int:
    """Revoke a device named by its fingerprint or key."""
    text = args.device.strip().lower().replace("-", "")
    if not text:
        raise InputError("Name the device to revoke: its fingerprint, as meshcrew devices "
                         "lists it.")
    with open_member(session) as member:
        rows = [row for row in member.devices() if
                row.fingerprint.lower().replace("-", "").startswith(text)
                or row.key.hex().startswith(text)]
        if len(rows) != 1:
            raise InputError(f"{args.device!r} names {'none' if not rows else 'more than one'} "
                             "of your devices; see meshcrew devices.")
        if rows[0].first:  # as the app's Devices screen says it
            raise InputError(f"{rows[0].fingerprint} is your member key, on the laptop where "
                             "meshcrew init made your identity: it cannot be revoked. Revoke a "
                             "linked laptop (meshcrew devices lists them).")
        if rows[0].revoked:
            raise InputError(f"{rows[0].fingerprint} is revoked already.")
        made = member.revoke_device(rows[0].key)
    session.answer({"device": rows[0].key.hex(), "records": [r.hex() for r in made]},
                   f"Revoked {rows[0].fingerprint} and rotated the keys: it reads nothing "
                   "written from now on.")
    return EXIT_OK


def run_init_link(args: argparse.Namespace, session: Session) -> int:
    """``init --link``: a new device's identity, then wait for the first laptop to link it."""
    from meshcrew.cli.temporary_node import wait_for_link
    from meshcrew.store import Replica

    home = session.home
    if home.path.is_dir():
        session.require_home()  # one this user may use
    if home.key_file.exists():
        raise UsageError("this home folder already holds an identity; link a fresh one "
                         "(use another --home)", "meshcrew init")
    if home.replica_file.exists():
        raise IdentityError(orphan_replica(session))
    home.ensure()
    device = identity.Identity.generate(identity.check_name(args.name or "new device"))
    identity.save(device, home.key_file, passphrase=session.passphrase())

    def show(code: str) -> None:
        if session.json:
            session.print_json({"code": code, "device_fingerprint": device.fingerprint})
        else:
            session.print("On the laptop that holds your member key, run:")
            session.print(f"  meshcrew devices add {code}")
            session.print(f"This device's fingerprint: {device.fingerprint}")
            _print_qr(code, session)
        sys.stdout.flush()

    with Replica.open(home) as replica:
        result = wait_for_link(replica, device, listen=tuple(args.listen or ()), show=show,
                               within_s=args.wait)
    if result is None:
        raise JoinRefused(f"No laptop of yours linked this one within {args.wait:.0f} s; run "
                          "meshcrew init --link again (in a fresh home folder).", "timeout")
    # The key file takes the member's name (it is what this device posts a profile with).
    renamed = identity.Identity.from_seed(device.seed, result.member_name)
    fresh = home.key_file.with_name(home.key_file.name + ".new")
    fresh.unlink(missing_ok=True)
    identity.save(renamed, fresh, passphrase=session.passphrase())
    os.replace(fresh, home.key_file)
    session.answer({"linked": result.to_json()},
                   f"Linked to {result.member_name}: member fingerprint "
                   f"{identity.fingerprint(result.member)} (compare it with `meshcrew whoami` on "
                   f"your first laptop); {result.spaces} space(s) here. Start it: meshcrew node")
    return EXIT_OK


def _print_qr(code: str, session: Session) -> None:
    """The code as a terminal QR code (for a phone's camera, or to photograph)."""
    import io

    import segno

    out = io.StringIO()
    segno.make(code.upper(), error="l", micro=False).terminal(out=out, compact=True)
    session.print(out.getvalue().rstrip("\n"))
