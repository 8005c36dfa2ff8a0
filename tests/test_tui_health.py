"""Journey: sync health — peers, their addresses, last contact and last sync, what each member
lacks per space, rejected records and why; and the connection state on the home and space
screens.

What peers there are is the node's to say; here a thin backend reports a fixed network (the
replica, the service and the rejects are real).
"""

from __future__ import annotations

from dataclasses import replace

from textual.pilot import Pilot

from meshcrew.node.reports import PeerReport
from meshcrew.records import sign_record
from meshcrew.tui.backend import PeersUpdated
from meshcrew.tui.health import Holdings, PeerStatus, Route, SyncStatus
from meshcrew.tui.node_backend import sync_status
from meshcrew.tui.screens.health import SyncHealthScreen
from meshcrew.tui.screens.space import SpaceScreen
from meshcrew.tui.service_backend import LocalBackend
from test_tui_support import (
    HOUR,
    Town,
    crew_of,
    drive,
    make_app,
    screen_text,
    table_rows,
    until,
    words,
)


class Networked(LocalBackend):
    """The local service, with the network a node would report."""

    network: SyncStatus
    known: dict[bytes, Holdings]

    def status(self) -> SyncStatus:
        return self.network

    def holdings(self, space_id: bytes) -> Holdings:
        mine = super().holdings(space_id)
        return {**self.known.get(space_id, {}), **mine}


def networked(town: Town) -> tuple[bytes, Networked, list[LocalBackend]]:
    space_id, (ada, bo, cy) = crew_of(town, "Ada", "Bo", "Cy")
    town.clock.tick()
    ada.checkin(space_id, text="Here", energy=4)
    ada.checkin(space_id, text="And a second thought", energy=4)
    net = Networked(ada.service.replica, ada.identity, clock=town.clock)
    now = town.clock.now
    net.network = SyncStatus(
        running=True, detail="", listen_addrs=("/ip4/192.168.1.5/tcp/4001",),
        peers=(PeerStatus(bo.identity.public_key, ("/ip4/192.168.1.7/tcp/4001",), True,
                          Route.LAN, now - 5_000, last_sync_ms=now - 120_000),
               PeerStatus(cy.identity.public_key, ("/dns4/cy.example.org/tcp/4001",), False,
                          Route.INTERNET, now - 3 * HOUR)),
        last_received_ms=now - 60_000)
    mine = LocalBackend.holdings(net, space_id)[ada.identity.public_key]
    behind = {author: seq - (2 if author == ada.identity.public_key else 0)
              for author, seq in mine.items()}
    net.known = {space_id: {bo.identity.public_key: mine, cy.identity.public_key: behind}}
    return space_id, net, [ada, bo, cy]


def test_sync_health_lists_peers_gaps_and_rejected_records(town: Town) -> None:
    space_id, net, (ada, bo, _cy) = networked(town)
    # A record with a broken signature, as a misbehaving peer would send it.
    forged = sign_record(bo.identity.signing_key, kind="sealed", space=space_id, seq=99,
                         prev=bytes(32), ts=town.clock.now, body=b"x")
    ada.service.ingest([forged.raw[:-3] + b"\x00\x00\x00"], sender="12D3KooWpeer")
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        assert "connected to 2 peers" not in words(app)
        assert "connected to 1 peer" in words(app)
        assert "1 on the LAN · 0 over the internet" in words(app)
        assert "last sync: 2 min ago (1 of 2 peers synced)" in words(app)
        assert "records last arrived: 1 min ago" in words(app)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncHealthScreen), "sync health")
        assert "node running · 1 of 2 known peers connected · last sync 2 min ago" in words(app)
        assert "/ip4/192.168.1.5/tcp/4001" in words(app)
        peers = {row[0]: row for row in table_rows(app, "peers")}
        assert peers["Bo"][2:6] == ["yes", "lan", "just now", "2 min ago"]
        assert peers["Bo"][6] == "/ip4/192.168.1.7/tcp/4001"
        assert peers["Cy"][2:6] == ["no", "internet", "3 h ago", "never"]
        gaps = {row[1]: row[2] for row in table_rows(app, "gaps")}
        assert gaps == {"Bo": "nothing", "Cy": "2 records"}
        rejected = table_rows(app, "rejected")
        assert [row[3:5] for row in rejected] == [["store", "bad_signature"]]
        assert "does not match the author's key" in rejected[0][5]
        assert rejected[0][6] == "12D3KooWpeer"

        # The node reports a change: the screen follows.
        net.network = SyncStatus(running=False, detail="The node stopped.")
        net.emit(PeersUpdated())
        await until(pilot, lambda: "The node stopped." in words(app), "the new status")
        assert table_rows(app, "peers") == [["no peers known yet", "", "", "", "", "", ""]]

    drive(app, script)


def test_space_screen_shows_presence_and_receipts_from_the_node(town: Town) -> None:
    _space_id, net, _people = networked(town)
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew")
        text = screen_text(app)
        assert "online" in text  # Bo
        assert "last seen 3 h ago" in text  # Cy
        # Ada's newest check-in: Bo holds it, Cy is two records behind.
        assert "seen by 2 of 3" in text

    drive(app, script)


def test_home_and_sync_health_say_never_until_a_sync_completes_then_follow_the_node(
        town: Town) -> None:
    _space_id, net, (_ada, bo, _cy) = networked(town)
    now = town.clock.now
    never = tuple(replace(peer, last_sync_ms=None) for peer in net.network.peers)
    net.network = replace(net.network, peers=never)
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        assert "last sync: never (0 of 2 peers synced)" in words(app)
        # A session with Bo runs to the end: the node says so, the home panel follows.
        synced = replace(never[0], last_sync_ms=now)
        assert synced.member == bo.identity.public_key
        net.network = replace(net.network, peers=(synced, never[1]))
        net.emit(PeersUpdated())
        await until(pilot, lambda: "last sync: just now (1 of 2 peers synced)" in words(app),
                    "the home panel to follow the node")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncHealthScreen), "sync health")
        assert "last sync just now" in words(app)
        last_sync = {row[0]: row[5] for row in table_rows(app, "peers")}
        assert last_sync == {"Bo": "just now", "Cy": "never"}

    drive(app, script)


def test_home_says_when_the_node_runs_but_no_peer_is_connected(town: Town) -> None:
    _space_id, net, _people = networked(town)
    net.network = replace(net.network, peers=tuple(
        replace(p, connected=False) for p in net.network.peers))
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        assert "online, no peer connected yet" in words(app)
        assert "looking for members on the LAN" in words(app)
        assert "connected to 0 peers" not in words(app)
        assert "last sync: 2 min ago (1 of 2 peers synced)" in words(app)

    drive(app, script)


def test_the_route_is_what_the_node_says_of_the_link() -> None:
    from meshcrew.node import PeerReport
    from meshcrew.tui.node_backend import route_of
    from meshcrew.tui.screens.health import route_text

    relay = "12D3KooWRelayPeerIdxyz9"
    base = PeerReport("12D3KooWBo", b"k" * 32, "Bo", True, ("/ip4/192.168.1.7/tcp/4001",),
                      1, False, "connection", ())
    assert route_of(base) is Route.LAN  # direct, at a private address
    relayed = replace(base, link="relayed", via=relay)
    assert route_of(relayed) is Route.RELAY
    punched = replace(base, link="hole-punched", hole_punch="succeeded")
    assert route_of(punched) is Route.HOLE_PUNCHED
    assert route_of(replace(relayed, connected=False)) is Route.LAN  # the link is of now only
    shown = PeerStatus(b"k" * 32, connected=True, route=Route.RELAY, via=relay)
    assert route_text(shown) == "relay via 12D3…xyz9"
    assert route_text(replace(shown, route=Route.HOLE_PUNCHED, via=None)) == "hole-punched"


def test_sync_health_names_a_carrier_as_a_carrier(town: Town) -> None:
    _space, net, _members = networked(town)
    carrier = b"c" * 32
    net.network = replace(net.network, peers=(*net.network.peers, PeerStatus(
        carrier, ("/ip4/198.51.100.2/tcp/4001",), True, Route.INTERNET, town.clock.now,
        role="carrier")))
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncHealthScreen), "sync health")
        assert "carrier" in {row[0] for row in table_rows(app, "peers")}

    drive(app, script)


def test_sync_health_names_a_members_laptop_as_their_device(town: Town) -> None:
    _space, net, members = networked(town)
    bo = members[1].identity.public_key
    laptop = b"l" * 32
    report = PeerReport(peer_id="12D3laptop", key=laptop, name="Bo", connected=True, addrs=(),
                        last_seen_ms=None, banned=False, source="exchange", spaces=(),
                        role="device", member=bo)
    [shown] = sync_status((), [report], None).peers  # what the node's report becomes
    assert (shown.role, shown.of_member) == ("device", bo)
    net.network = replace(net.network, peers=(*net.network.peers, PeerStatus(
        laptop, ("/ip4/192.168.1.9/tcp/4001",), True, Route.LAN, town.clock.now,
        role="device", of_member=bo)))
    app = make_app(net)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncHealthScreen), "sync health")
        assert "Bo (device)" in {row[0] for row in table_rows(app, "peers")}

    drive(app, script)
