"""``meshcrew node``, ``status``, ``peers`` and ``connect``: run the node and look at it.

``node`` runs in the foreground until SIGINT or SIGTERM, logging to ``node.log`` in the home
folder; the other commands ask the running node over its control socket (``peers`` reads the
saved peer book when no node runs).
"""

from __future__ import annotations

import argparse
import logging
import signal

from meshcrew.cli.display import local_time, short
from meshcrew.cli.parsing import (
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    positive_number,
    with_examples,
)
from meshcrew.cli.session import Session
from meshcrew.errors import NodeNotRunning
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.node.log_file import logging_to_home
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.reports import NodeStatus, PeerReport
from meshcrew.node.stopping import exit_if_stuck

STOP_DEADLINE_S = 1.8
"""How long the node may take to stop after SIGINT or SIGTERM before it is cut short: seconds
of its own, its waits for a CPU not counted (:func:`meshcrew.node.stopping.exit_if_stuck`)."""


def register(commands: Commands) -> None:
    """Add ``node``, ``status``, ``peers`` and ``connect``."""
    node = add_command(
        commands, "node", summary="run this member's node (headless, in the foreground)",
        description="Run the node: listen for peers, sync every space you are in, publish "
        "what you write, and serve the other commands (they reach it over a socket in the home "
        "folder). Logs go to node.log in the home folder. Stop it with Ctrl-C or SIGTERM.",
        handler=run_node)
    with_examples(node,
                  "meshcrew node",
                  "meshcrew node --listen /ip4/0.0.0.0/tcp/4001")
    node.add_argument("--listen", action="append", metavar="MULTIADDR",
                      help="listen here, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable; default: every "
                      "IPv4 interface, on the port used last time)")
    node.add_argument("--bootstrap", action="append", metavar="ADDR",
                      help="a peer to dial at start and keep dialling, a multiaddr ending in "
                      "/p2p/<peer id> (repeatable)")
    node.add_argument("--no-mdns", action="store_true",
                      help="do not announce or look for peers on the LAN")
    node.add_argument("--sync-period", type=positive_number, default=60.0, metavar="SECONDS",
                      help="how often connected peers are synced again (default: 60)")
    node.add_argument("--reachability", choices=("auto", "public", "private"), default="auto",
                      help="whether peers can dial this node directly: learnt from peers' "
                      "dial-backs (auto, the default), or set; a public node relays for members "
                      "behind NAT, a private one keeps reservations on relays")
    node.add_argument("--relay", action="append", metavar="ADDR",
                      help="a circuit relay (any libp2p relay v2) to keep a reservation on when "
                      "not publicly reachable, a multiaddr ending in /p2p/<peer id> "
                      "(repeatable; --bootstrap peers and public members are tried too)")
    node.add_argument("--carrier", action="store_true",
                      help="carry the spaces that name this node: hold their sealed records "
                      "and serve them to their members (an always-on node; see `meshcrew "
                      "carrier --help`)")
    node.add_argument("--carrier-quota", type=positive_number, default=256, metavar="MIB",
                      help="as a carrier, the most a space may take on disk (default: 256 MiB)")
    node.add_argument("--carrier-total", type=positive_number, default=4096, metavar="MIB",
                      help="as a carrier, the most all spaces may take (default: 4096 MiB)")
    node.add_argument("--carrier-grace", type=float, default=7.0, metavar="DAYS",
                      help="as a carrier, how long the records of a space that dropped this "
                      "node are kept before they are deleted (default: 7 days)")
    node.add_argument("--relay-strangers", choices=("on", "off"), default="on",
                      help="as a relay, give peers that share no space with you the limited "
                      "relay of the spec (2 min, 128 KiB: enough for a hole punch or a join), "
                      "or nothing (default: on)")

    add_command(
        commands, "status", summary="show the running node: peer id, addresses, peers",
        description="Show the running node: its peer id, the addresses peers can dial it at "
        "(full multiaddrs ending in /p2p/<peer id>), the connected peers, when a sync with a "
        "peer last ran to the end, the spaces it syncs and its gossip counters. Exits 1 if no "
        "node is running.",
        handler=run_status, json=True)

    add_command(
        commands, "peers", summary="list connected and known peers and what each lacks",
        description="List the peers the node knows: connected ones first, when each was last "
        "seen and last synced, and per space you share, when it was last synced, how many of "
        "your records each is not known to hold (they lack) and how many of theirs you do not "
        "(we lack), as of the last sync. Without a running node, lists the saved peer book.",
        handler=run_peers, json=True)

    connect = add_command(
        commands, "connect", summary="dial a peer now",
        description="Ask the running node to dial a peer at a multiaddr ending in "
        "/p2p/<peer id>, remember it, and sync with it if it is a member of your spaces.",
        handler=run_connect, json=True)
    with_examples(connect, "meshcrew connect /ip4/192.168.1.20/tcp/4001/p2p/12D3KooW...")
    connect.add_argument("addr", metavar="ADDR", help="the peer's multiaddr")


def _client(session: Session) -> ControlClient:
    client = ControlClient.if_running(session.home, control_types())
    if client is None:
        raise NodeNotRunning(f"No node is running for {session.home.path}; start one with: "
                             f"meshcrew --home {session.home.path} node")
    return client


# --- node ------------------------------------------------------------------------------------


def run_node(args: argparse.Namespace, session: Session) -> int:
    """Run the node until SIGINT or SIGTERM."""
    import trio

    from meshcrew.net.addresses import is_peer_addr
    from meshcrew.node import NodeConfig, open_node
    from meshcrew.node.config import MIB, CarrierConfig

    for option, addrs in (("--bootstrap", args.bootstrap), ("--relay", args.relay)):
        for addr in addrs or ():
            if not is_peer_addr(addr):
                raise UsageError(f"argument {option}: {addr!r} is not a multiaddr ending in "
                                 "/p2p/<peer id>", "meshcrew node")
    person = session.load_identity()
    config = NodeConfig(listen_addrs=tuple(args.listen or ()), mdns=not args.no_mdns,
                        bootstrap=tuple(args.bootstrap or ()), sync_period_s=args.sync_period,
                        reachability=args.reachability, relays=tuple(args.relay or ()),
                        relay_strangers=args.relay_strangers == "on",
                        carrier=CarrierConfig(
                            enabled=args.carrier,
                            space_quota_bytes=int(args.carrier_quota * MIB),
                            total_quota_bytes=int(args.carrier_total * MIB),
                            drop_grace_ms=int(args.carrier_grace * 86_400_000)))
    log = logging.getLogger("meshcrew.node")

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_node(session.home, person, config) as node:
                status = node.status()
                session.print(f"meshcrew node of {person.name} running, peer id "
                              f"{status.peer_id}; stop with Ctrl-C")
                for addr in status.addrs:
                    session.print(f"  listening on {addr}")
                session.out.flush()
                async for signum in signals:
                    log.info("stopping on signal %s", signal.Signals(signum).name)
                    break
                exit_if_stuck(STOP_DEADLINE_S)

    with logging_to_home(session.home):
        trio.run(serve)
    return EXIT_OK


# --- status, peers, connect ------------------------------------------------------------------


def run_status(args: argparse.Namespace, session: Session) -> int:
    """Show the running node."""
    status: NodeStatus = _client(session).call("status")
    if session.json:
        session.print_json(status.to_json())
        return EXIT_OK
    session.print(f"{status.name}  {status.fingerprint}")
    session.print(f"  peer id    {status.peer_id}")
    for addr in status.addrs:
        session.print(f"  address    {addr}")
    session.print(f"  peers      {len(status.peers)} connected")
    synced = status.synced_peers
    session.print(f"  last sync  {_when(status.last_sync_ms)}" + (
        f" ({synced} {'peer' if synced == 1 else 'peers'} synced so far)" if synced else ""))
    session.print(f"  spaces     {len(status.spaces)}, {status.records:,} records")
    session.print(f"  LAN        {'announced (mDNS)' if status.mdns else 'off'}")
    session.print(f"  reachable  {status.reachability}: {status.reachability_reason}")
    if status.reservations:
        session.print(f"  relays     reserved on {', '.join(status.reservations)}")
    if status.carrier:
        held = ", ".join(f"{short(c.space)} ({c.bytes / 1_048_576:.1f} MiB"
                         + ("" if c.named else ", dropped: deleted after the grace period")
                         + ")" for c in status.carried) or "nothing yet"
        session.print(f"  carrier    carrying {held}")
    for carrier, why in status.carrier_refusals:
        session.print(f"  carrier    {carrier} refused: {why}")
    relay = status.relay
    if relay is not None and relay.serving:
        session.print(f"  relaying   {relay.reservations}/{relay.max_reservations} reservations, "
                      f"{relay.circuits}/{relay.max_circuits} circuits, "
                      f"{relay.bytes_today:,}/{relay.bytes_per_day:,} bytes today"
                      + ("" if relay.strangers else ", members only"))
    session.print(f"  gossip     {status.gossip_published} published, {status.gossip_received} "
                  f"received, {status.gossip_rejected} rejected, {status.gossip_dropped} dropped")
    if status.banned:
        session.print(f"  banned     {', '.join(status.banned)}")
    return EXIT_OK


def _offline_peers(session: Session) -> list[PeerReport]:
    from meshcrew.identity import public_key_of_peer_id

    session.require_home()
    book = PeerBook.load(session.home)
    reports = []
    for entry in book.entries():
        try:
            key: bytes | None = public_key_of_peer_id(entry.peer_id)
        except Exception:  # not a member key
            key = None
        reports.append(PeerReport(entry.peer_id, key, None, False, tuple(entry.addrs),
                                  entry.last_seen_ms, entry.peer_id in book.banned,
                                  entry.source, (), entry.last_sync_ms))
    return reports


def run_peers(args: argparse.Namespace, session: Session) -> int:
    """List peers (from the running node, else from the saved peer book)."""
    client = ControlClient.if_running(session.home, control_types())
    reports: list[PeerReport] = client.call("peers") if client else _offline_peers(session)
    if session.json:
        session.print_json({"running": client is not None,
                            "peers": [r.to_json() for r in reports]})
        return EXIT_OK
    if client is None:
        session.print("No node is running; peers from the saved peer book:")
    if not reports:
        session.print("No peers known yet.")
    for report in reports:
        session.print(_peer_line(report))
        for space in report.spaces:
            name = space.name or short(space.space)
            if not space.synced:
                session.print(f"    {name}: not synced yet")
            else:
                synced = "" if space.last_sync_ms is None else \
                    f"; last synced {local_time(space.last_sync_ms)}"
                session.print(f"    {name}: they lack {space.they_lack}, "
                              f"we lack {space.we_lack}{synced}")
    return EXIT_OK


def _peer_line(report: PeerReport) -> str:
    who = report.name or ("(carrier)" if report.role == "carrier" else
                          "(not a member of your spaces)")
    if report.role == "device":
        who += " (a device)"
    state = "connected" if report.connected else (
        f"last seen {local_time(report.last_seen_ms)}" if report.last_seen_ms else "never seen")
    flags = "  BANNED" if report.banned else ""
    if report.connected:
        state += {"direct": ", direct", "hole-punched": ", direct (hole-punched)",
                  "relayed": f", relayed via {report.via or 'a relay'}"}.get(report.link, "")
    return f"{who:<24} {report.peer_id}  {state}, last sync {_when(report.last_sync_ms)}{flags}"


def _when(ms: int | None) -> str:
    """A local time, or ``never``."""
    return "never" if ms is None else local_time(ms)


def run_connect(args: argparse.Namespace, session: Session) -> int:
    """Dial a peer through the running node."""
    peer_id: str = _client(session).call("connect", args.addr)
    session.answer({"peer_id": peer_id, "addr": args.addr}, f"Connected to {peer_id}.")
    return EXIT_OK

