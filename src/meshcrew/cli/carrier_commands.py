"""Carriers: ``carrier offer`` (on the carrier), ``carrier add``, ``carrier drop`` and
``carriers`` (on a member's laptop). A carrier is run with ``meshcrew node --carrier``."""

from __future__ import annotations

import argparse
from typing import cast

from meshcrew.cli.display import local_time
from meshcrew.cli.parsing import EXIT_OK, Commands, UsageError, add_command, add_space_argument
from meshcrew.cli.service_access import open_member
from meshcrew.cli.session import Session
from meshcrew.errors import IdentityError, InputError, MeshcrewError


def register(commands: Commands) -> None:
    """Add ``carrier offer|add|drop`` and ``carriers``."""
    carrier = add_command(
        commands, "carrier", summary="name or drop a carrier of a space; offer to carry",
        description="A carrier is an always-on node (a home server, a Raspberry Pi, a VPS) that "
        "holds a space's sealed records and serves them to its members while their laptops "
        "sleep, without being able to read them. Run one with `meshcrew node --carrier`, print "
        "its code with `carrier offer`, and name it in a space with `carrier add`.",
        handler=_group_help)
    group = cast("Commands", carrier.add_subparsers(title="commands", metavar="COMMAND",
                                                    dest="carrier_command"))
    add_command(
        group, "offer", summary="print this node's offer to carry (on the carrier)",
        description="Print the one-line code members give to `meshcrew carrier add`: this "
        "node's peer id and the addresses it can be dialled at. Needs the node running "
        "(`meshcrew node --carrier`).", handler=run_offer, json=True)
    add = add_command(
        group, "add", summary="name a carrier of a space",
        description="Name a carrier of a space you are in: every member's node learns it, "
        "brings it the space's records and syncs with it. Any member may name or drop a "
        "carrier (docs/spaces.md, Carriers). The carrier learns member keys, sizes and "
        "timing; it cannot read a post.", handler=run_add, json=True)
    add_space_argument(add)
    add.add_argument("carrier", metavar="CODE",
                     help="the carrier's offer code (`meshcrew carrier offer` on it), or its "
                     "peer id")
    drop = add_command(
        group, "drop", summary="stop a carrier carrying a space",
        description="Drop a carrier from a space: members stop syncing with it and it deletes "
        "the space's records after its grace period.", handler=run_drop, json=True)
    add_space_argument(drop)
    drop.add_argument("carrier", metavar="CARRIER", help="the carrier's peer id or offer code")
    listing = add_command(
        commands, "carriers", summary="list the carriers of a space",
        description="List the carriers a space names, who named each and when.",
        handler=run_list, json=True)
    add_space_argument(listing)


def _group_help(args: argparse.Namespace, session: Session) -> int:
    raise UsageError("the carrier command needs a command after it: carrier offer, carrier add "
                     "SPACE CODE or carrier drop SPACE CARRIER", "meshcrew carrier")


def _key(text: str) -> bytes:
    from meshcrew.node.carrying import carrier_key

    try:
        return carrier_key(text)
    except (IdentityError, ValueError):
        raise InputError(f"{text!r} is not a carrier's offer code, peer id or key.") from None


def run_offer(args: argparse.Namespace, session: Session) -> int:
    """Print the offer code of the running node."""
    from meshcrew.node import NodeStatus
    from meshcrew.node.carrying import offer_code
    from meshcrew.node.control_client import ControlClient, control_types

    client = ControlClient.if_running(session.home, control_types())
    if client is None:
        raise InputError("No node is running here; start the carrier with: meshcrew --home "
                         f"{session.home.path} node --carrier")
    status: NodeStatus = client.call("status")
    code = offer_code(status.peer_id, [a for a in status.addrs if "/p2p-circuit" not in a])
    session.answer({"code": code, "peer_id": status.peer_id, "addrs": list(status.addrs)},
                   code, "Give this line to a member: meshcrew carrier add SPACE 'CODE'")
    return EXIT_OK


def run_add(args: argparse.Namespace, session: Session) -> int:
    """Name a carrier of a space (and tell the running node where it is)."""
    from meshcrew.identity import peer_id_of
    from meshcrew.node.carrying import offer_addrs
    from meshcrew.node.control_client import ControlClient, control_types

    key = _key(args.carrier)
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        record = member.add_carrier(space_id, key)
        name = member.summary(space_id).name or space_id.hex()
    reached = None
    client = ControlClient.if_running(session.home, control_types())
    for addr in offer_addrs(args.carrier) if client is not None else []:
        try:
            client.call("connect", addr)  # type: ignore[union-attr]
            reached = addr
            break
        except MeshcrewError:
            continue
    session.answer({"id": record.hex(), "space": space_id.hex(), "carrier": peer_id_of(key),
                    "reached": reached},
                   f"{peer_id_of(key)} now carries {name}." + (
                       " Your node reached it and brings it the space's records." if reached else
                       " Your node brings it the space's records when it next reaches it."))
    return EXIT_OK


def run_drop(args: argparse.Namespace, session: Session) -> int:
    """Drop a carrier from a space."""
    from meshcrew.identity import peer_id_of

    key = _key(args.carrier)
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        record = member.drop_carrier(space_id, key)
    session.answer({"id": record.hex(), "space": space_id.hex(), "carrier": peer_id_of(key)},
                   f"{peer_id_of(key)} no longer carries this space.")
    return EXIT_OK


def run_list(args: argparse.Namespace, session: Session) -> int:
    """List a space's carriers."""
    with open_member(session) as member:
        space_id = member.resolve_space(args.space)
        rows = member.carriers(space_id)
    session.answer({"space": space_id.hex(), "carriers": [r.to_json() for r in rows]},
                   *([f"{row.peer_id}  named by {row.added_by_name} on {local_time(row.added_ts)}"
                      for row in rows]
                     or ["No carriers: records travel only while members are online together."]))
    return EXIT_OK
