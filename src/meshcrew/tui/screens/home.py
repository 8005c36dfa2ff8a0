"""Home: my spaces (congregations with their crews and dyads nested), unread counts, whose
check-in is due this cycle, and the connection state."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static, Tree
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from meshcrew.errors import MeshcrewError
from meshcrew.identity import fingerprint
from meshcrew.service import CycleEntry, SpaceSummary
from meshcrew.tui.formatting import ago, day, plural, rhythm_label
from meshcrew.tui.health import Route, SyncStatus
from meshcrew.tui.messages import PeersChanged, RecordsChanged
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.congregation import CongregationScreen
from meshcrew.tui.screens.create_space import CreateSpaceScreen
from meshcrew.tui.screens.devices import DevicesScreen
from meshcrew.tui.screens.health import SyncHealthScreen
from meshcrew.tui.screens.join import JoinScreen
from meshcrew.tui.screens.space import SpaceScreen

_SMALL_KINDS = ("crew", "dyad")


class HomeScreen(MeshcrewScreen):
    """The spaces this member is in, and how connected this node is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_space", "New space", tooltip="Start a crew, dyad or congregation"),
        Binding("j", "join", "Join", tooltip="Join a space with an invite code"),
        Binding("s", "sync_health", "Sync health", tooltip="Peers, what each lacks, rejected "
                "records"),
        Binding("d", "devices", "Devices", tooltip="Your laptops: link a new one, revoke a lost "
                "one"),
        Binding("q", "app.quit", "Quit", tooltip="Leave meshcrew"),
    ]

    def __init__(self, then: Screen[Any] | None = None) -> None:
        """Args: then: a form to open once the screen is up (its result opens a space)."""
        super().__init__()
        self._then = then
        self._member: bytes | None = None
        """The member this laptop writes as, once a space here says (see :meth:`_title`)."""

    def compose(self) -> ComposeResult:
        """The space tree beside the connection and the highlighted space."""
        yield Header()
        with Horizontal():
            tree: Tree[SpaceSummary | None] = Tree("My spaces", id="spaces")
            tree.show_root = False
            tree.border_title = "My spaces"
            yield tree
            with Vertical(id="home-side"):
                yield Static("", id="connection", classes="panel")
                yield Static("", id="space-info", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the tree and the connection panel."""
        self.query_one("#connection").border_title = "Connection"
        self.query_one("#space-info").border_title = "Space"
        self.sub_title = f"{self.backend.identity.name} · {self.backend.identity.fingerprint}"
        records = 0 if self.host.prepared else self.backend.record_count()
        if records > self.host.prepare_above:
            self._prepare(records)
        else:
            self.host.prepared = True
            self.refresh_spaces()
        self.refresh_connection()
        self.query_one("#spaces").focus()
        if self._then is not None:
            self.open_after(self._then)
            self._then = None

    def on_screen_resume(self) -> None:
        """Unread counts change after reading a space."""
        if self.host.prepared:
            self.refresh_spaces()

    def on_records_changed(self, _message: RecordsChanged) -> None:
        """New records: new spaces, counts, who is due (when shown: a screen above it brings
        the home screen up to date as it closes, see :meth:`on_screen_resume`)."""
        if self.host.prepared and self.app.screen is self:
            self.refresh_spaces()

    # -- opening a big replica ----------------------------------------------------------------

    def _prepare(self, records: int) -> None:
        """Say what is happening, and fold and decrypt the spaces in a worker thread."""
        tree: Tree[SpaceSummary | None] = self.query_one("#spaces", Tree)
        tree.root.add_leaf(Text(f"Opening your spaces ({records:,} records)…", style="italic"),
                           data=None)
        bar = ProgressBar(id="opening", show_eta=False, show_percentage=False)
        self.query_one("#home-side").mount(bar, before=0)
        bar.border_title = "Opening"
        self.run_worker(self._prepare_in_thread, thread=True, exclusive=True,
                        group="prepare", exit_on_error=False)

    def _prepare_in_thread(self) -> None:
        def progress(done: int, total: int, name: str | None) -> None:
            self.app.call_from_thread(self._opened, done, total, name)

        self.backend.prepare(progress)

    def _opened(self, done: int, total: int, name: str | None) -> None:
        bar = self.query_one("#opening", ProgressBar)
        bar.update(total=total, progress=done)
        self.query_one("#space-info", Static).update(
            Text(f"Opened {name or 'a space'} ({done} of {total})", style="italic"))

    @on(Worker.StateChanged)
    def _prepared(self, event: Worker.StateChanged) -> None:
        """Once the worker is done (or failed: the reads then do the work and say why)."""
        if event.worker.group != "prepare" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.host.prepared = True
        for bar in self.query("#opening"):
            bar.remove()
        self.refresh_spaces()
        # Views from snapshots answer the screens at once; the fold a write needs goes on here.
        self.run_worker(self.backend.complete, thread=True, exclusive=True, group="complete",
                        exit_on_error=False)

    def on_peers_changed(self, _message: PeersChanged) -> None:
        """The connection panel follows the node."""
        self.refresh_connection()

    # -- the tree -----------------------------------------------------------------------------

    def _title(self, summaries: list[SpaceSummary]) -> None:
        """This member's name and fingerprint; on a linked laptop, the member's fingerprint
        (the one crewmates know) and this laptop's. The spaces' summaries say whom this laptop
        writes as (from the views the list has already: no fold here)."""
        me = self.backend.identity
        if self._member is None:
            self._member = next((s.writes_as for s in summaries
                                 if s.writes_as not in (None, me.public_key)), None)
        if self._member is not None and self._member != me.public_key:
            self.sub_title = (f"{me.name} · {fingerprint(self._member)} · this laptop "
                              f"{me.fingerprint}")
        else:
            self.sub_title = f"{me.name} · {me.fingerprint}"

    def refresh_spaces(self) -> None:
        """Rebuild the tree, keeping the highlighted space."""
        tree: Tree[SpaceSummary | None] = self.query_one("#spaces", Tree)
        highlighted = tree.cursor_node.data if tree.cursor_node is not None else None
        summaries = self.attempt(self.backend.spaces) or []
        self._title(summaries)
        tree.clear()
        if not summaries:
            tree.root.add_leaf(Text("No spaces yet: press n to start a crew, or j to join one "
                                    "with an invite code.", style="italic"), data=None)
            self._show_space(None)
            return
        current = [s for s in summaries if s.my_status == "active"]
        past = [s for s in summaries if s.my_status != "active"]
        ids = {s.id for s in current}
        for summary in current:
            if summary.kind == "congregation":
                node = tree.root.add(self._label(summary), data=summary, expand=True)
                for child in current:
                    if child.parent == summary.id:
                        node.add_leaf(self._label(child), data=child)
            elif summary.parent is None or summary.parent not in ids:
                tree.root.add_leaf(self._label(summary), data=summary)
        if past:
            group = tree.root.add(Text("Past spaces", style="italic"), data=None, expand=True)
            for summary in past:
                group.add_leaf(self._label(summary), data=summary)
        self._restore_cursor(tree, highlighted)

    def _restore_cursor(self, tree: Tree[SpaceSummary | None],
                        highlighted: SpaceSummary | None) -> None:
        target = highlighted.id if highlighted is not None else None
        line = next((n.line for n in _walk(tree.root) if n.data is not None
                     and n.data.id == target), None)
        if line is None:
            line = next((n.line for n in _walk(tree.root) if n.data is not None), 0)
        tree.cursor_line = max(0, line)

    def _label(self, summary: SpaceSummary) -> Text:
        label = Text()
        label.append(summary.name or f"{summary.kind} {summary.id.hex()[:8]}", style="bold")
        label.append(f"  {summary.kind}", style="dim")
        if summary.my_status != "active":
            label.append(f"  ({summary.my_status})", style="dim")
            return label
        if summary.waiting_for_keys:
            label.append("  waiting for keys", style="italic")
            return label
        log = self.attempt(lambda: self.backend.log(summary.id)) or []
        unread = self.host.read_marks.unread(log, self.backend.identity.public_key)
        if unread:
            label.append(f"  {unread} new", style="bold reverse")
        due = self._due(summary)
        if due:
            label.append(f"  check-in due: {', '.join(due)}", style="italic")
        return label

    def _cycle(self, summary: SpaceSummary) -> CycleEntry | None:
        if summary.kind not in _SMALL_KINDS or summary.name is None:
            return None
        try:
            return self.backend.cycle(summary.id)
        except MeshcrewError:
            return None

    def _due(self, summary: SpaceSummary) -> list[str]:
        cycle = self._cycle(summary)
        if cycle is None:
            return []
        return ["you" if m.is_me else m.name for m in cycle.missing]

    # -- side panels --------------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#spaces")
    def _highlighted(self, event: Tree.NodeHighlighted[SpaceSummary | None]) -> None:
        self._show_space(event.node.data)

    def _show_space(self, summary: SpaceSummary | None) -> None:
        panel = self.query_one("#space-info", Static)
        if summary is None:
            panel.update("")
            return
        text = Text()
        text.append(f"{summary.name or 'locked: ' + summary.locked_because}\n", style="bold")
        text.append(f"{summary.kind} · {plural(summary.members, 'member')}\n")
        if summary.rhythm and summary.kind in _SMALL_KINDS:
            text.append(f"checks in {rhythm_label(summary.rhythm)}\n")
        if summary.purpose:
            text.append(f"{summary.purpose}\n")
        cycle = self._cycle(summary) if summary.my_status == "active" else None
        if cycle is not None:
            done = len(cycle.checkins)
            text.append(f"\nThis cycle ({day(cycle.start_ms, self.tz)} – "
                        f"{day(cycle.end_ms - 1, self.tz)}): {done} of "
                        f"{done + len(cycle.missing)} checked in.\n")
            if cycle.missing:
                names = ", ".join("you" if m.is_me else m.name for m in cycle.missing)
                text.append(f"Still to check in: {names}\n")
        panel.update(text)

    def refresh_connection(self) -> None:
        """Show whether a node runs, its peers by route, the last sync and the last arrival."""
        self.query_one("#connection", Static).update(connection_text(
            self.backend.status(), self.backend.now()))

    # -- actions ------------------------------------------------------------------------------

    @on(Tree.NodeSelected, "#spaces")
    def _selected(self, event: Tree.NodeSelected[SpaceSummary | None]) -> None:
        if event.node.data is not None:
            self.show(event.node.data)

    def open_space(self, space_id: bytes | None) -> None:
        """Show a space by id (a form's result)."""
        if space_id is None:
            return
        summary = self.attempt(lambda: self.backend.summary(space_id))
        if summary is not None:
            self.show(summary)

    def show(self, summary: SpaceSummary) -> None:
        """Show a space: the congregation board for a congregation, else the space screen."""
        if summary.kind == "congregation":
            self.app.push_screen(CongregationScreen(summary.id))
        else:
            self.app.push_screen(SpaceScreen(summary.id, summary))

    def open_after(self, modal: Screen[Any]) -> None:
        """Push a form whose result is a space id, then open that space."""
        self.app.push_screen(modal, self.open_space)

    def action_new_space(self) -> None:
        """Start a crew, dyad or congregation."""
        self.open_after(CreateSpaceScreen())

    def action_join(self) -> None:
        """Join with an invite code."""
        self.open_after(JoinScreen())

    def action_sync_health(self) -> None:
        """Peers, what each lacks, rejected records."""
        self.app.push_screen(SyncHealthScreen())

    def action_devices(self) -> None:
        """This member's laptops: link a new one, revoke a lost one."""
        self.app.push_screen(DevicesScreen())


def connection_text(status: SyncStatus, now_ms: int) -> Text:
    """The connection panel: not connected, or peers by route, when a sync with a peer last ran
    to the end (and with how many of the known peers one ever has), and when records last
    arrived."""
    text = Text()
    if not status.running:
        text.append("○ not connected\n", style="bold")
        text.append(status.detail, style="italic")
        return text
    connected = status.connected
    if connected:
        lan = sum(1 for p in connected if p.route is Route.LAN)
        text.append(f"● connected to {plural(len(connected), 'peer')}\n", style="bold")
        text.append(f"{lan} on the LAN · {len(connected) - lan} over the internet\n")
    else:
        text.append("◌ online, no peer connected yet\n", style="bold")
        text.append("looking for members on the LAN and at their last addresses\n",
                    style="italic")
    text.append(f"last sync: {ago(status.last_sync_ms, now_ms)}")
    if status.peers:
        text.append(f" ({len(status.synced)} of {plural(len(status.peers), 'peer')} synced)")
    text.append(f"\nrecords last arrived: {ago(status.last_received_ms, now_ms)}\n")
    if status.detail:
        text.append(status.detail, style="italic")
    return text


def _walk(node: TreeNode[Any]) -> list[TreeNode[Any]]:
    found = []
    for child in node.children:
        found.append(child)
        found += _walk(child)
    return found
