"""Sync health: the peers and their addresses, last contact and last completed sync, what each
member lacks in each space, and the records this replica refused with their reasons."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from meshcrew.identity import fingerprint
from meshcrew.service import SpaceSummary
from meshcrew.tui.formatting import ago, short_id, when
from meshcrew.tui.health import PeerStatus, Route, SyncStatus, lacking
from meshcrew.tui.messages import PeersChanged, RecordsChanged
from meshcrew.tui.screens.base import MeshcrewScreen

REJECTS_SHOWN = 200


class SyncHealthScreen(MeshcrewScreen):
    """Is sync working, and if not, why."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the previous screen"),
        Binding("r", "reload", "Refresh", tooltip="Read the sync status again"),
    ]

    def compose(self) -> ComposeResult:
        """The node's status, then peers, per-space gaps and rejected records."""
        yield Header()
        yield Static("", id="health-status", classes="panel")
        with TabbedContent(id="health-tabs"):
            with TabPane("Peers", id="tab-peers"):
                yield DataTable(id="peers", cursor_type="row")
            with TabPane("Per space", id="tab-spaces"):
                yield DataTable(id="gaps", cursor_type="row")
            with TabPane("Rejected records", id="tab-rejected"):
                yield DataTable(id="rejected", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the tables and fill them."""
        self.sub_title = "sync health"
        self.query_one("#health-status").border_title = "Node"
        self.query_one("#peers", DataTable).add_columns(
            "peer", "fingerprint", "connected", "route", "last seen", "last sync", "addresses")
        self.query_one("#gaps", DataTable).add_columns("space", "member", "lacks")
        self.query_one("#rejected", DataTable).add_columns(
            "when", "record", "space", "refused by", "reason", "why", "from")
        self.action_reload()

    def on_peers_changed(self, _message: PeersChanged) -> None:
        """Follow the node."""
        self.action_reload()

    def on_records_changed(self, _message: RecordsChanged) -> None:
        """Gaps and rejects change with new records."""
        self.action_reload()

    def action_reload(self) -> None:
        """Read everything again."""
        backend = self.backend
        status = backend.status()
        now = backend.now()
        spaces = [s for s in self.attempt(backend.spaces) or [] if s.my_status == "active"]
        names = self._names(spaces)
        self.query_one("#health-status", Static).update(status_text(status, now))
        peers = self.query_one("#peers", DataTable)
        peers.clear()
        if not status.peers:
            peers.add_row("no peers known yet", "", "", "", "", "", "")
        for peer in status.peers:
            fallback = "carrier" if peer.role == "carrier" else "unknown"
            name = names.get(peer.of_member or peer.member, fallback)
            if peer.of_member is not None:
                name += " (device)"  # a member's linked laptop, a peer of its own
            peers.add_row(name, fingerprint(peer.member),
                          "yes" if peer.connected else "no", route_text(peer),
                          ago(peer.last_seen_ms, now), ago(peer.last_sync_ms, now),
                          " ".join(peer.addresses) or "none known",
                          key=peer.member.hex())
        self._fill_gaps(spaces, names)
        rejected = self.query_one("#rejected", DataTable)
        rejected.clear()
        space_names = {s.id: s.name or short_id(s.id) for s in spaces}
        for row in self.attempt(lambda: backend.rejected(limit=REJECTS_SHOWN)) or []:
            rejected.add_row(when(row.at_ms, self.tz),
                             short_id(row.record_id) if row.record_id else "(too large)",
                             space_names.get(row.space, "") if row.space else "",
                             row.source, row.reason,
                             row.sentence + (f" ({row.detail})" if row.detail else ""),
                             row.sender or (names.get(row.author, "") if row.author else ""))

    def _names(self, spaces: list[SpaceSummary]) -> dict[bytes, str]:
        names: dict[bytes, str] = {}
        for summary in spaces:
            for member in self.attempt(partial(self.backend.members, summary.id)) or []:
                names.setdefault(member.key, member.name)
        return names

    def _fill_gaps(self, spaces: list[SpaceSummary], names: dict[bytes, str]) -> None:
        """Per space and member: how many of this replica's records they are known to lack."""
        gaps = self.query_one("#gaps", DataTable)
        gaps.clear()
        for summary in spaces:
            holdings = self.backend.holdings(summary.id)
            members = self.attempt(partial(self.backend.members, summary.id)) or []
            me = next((m.key for m in members if m.is_me), self.backend.identity.public_key)
            mine = holdings.get(me, {})  # per member: on a linked laptop, its member's
            for member in members:
                if member.is_me or member.status != "active":
                    continue
                theirs = holdings.get(member.key)
                lacks = "unknown (no sync with them yet)" if theirs is None else \
                    "nothing" if not lacking(mine, theirs) else \
                    f"{lacking(mine, theirs)} records"
                gaps.add_row(summary.name or short_id(summary.id),
                             names.get(member.key, member.name), lacks)


def route_text(peer: PeerStatus) -> str:
    """"relay via 12D3…wxyz" for a relayed peer, else the route's name."""
    if peer.route is Route.RELAY and peer.via:
        return f"relay via {peer.via[:4]}…{peer.via[-4:]}"
    return peer.route.value


def status_text(status: SyncStatus, now_ms: int) -> Text:
    """The node panel: running or not, where it listens, the last sync, the last arrival."""
    text = Text()
    if not status.running:
        text.append("not connected\n", style="bold")
        text.append(status.detail, style="italic")
        return text
    text.append(f"node running · {len(status.connected)} of {len(status.peers)} known peers "
                f"connected · last sync {ago(status.last_sync_ms, now_ms)} · "
                f"records last arrived {ago(status.last_received_ms, now_ms)}\n",
                style="bold")
    text.append("listening on " + (", ".join(status.listen_addrs) or "nothing"))
    if status.detail:
        text.append(f"\n{status.detail}", style="italic")
    return text
