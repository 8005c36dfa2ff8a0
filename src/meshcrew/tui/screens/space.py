"""A crew or dyad: members with presence and energy sparklines, the rhythm cycle, and the
timeline of check-ins with replies, reactions and receipts inline."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from meshcrew.service import CycleEntry, MemberEntry, PostEntry, SpaceSummary
from meshcrew.tui.cards import build_cards, extend_cards
from meshcrew.tui.formatting import ago, day, one_line, sparkline
from meshcrew.tui.health import NO_HOLDINGS, Holdings, SyncStatus, receipt
from meshcrew.tui.memory import FREEZE_ABOVE, long_lived, thaw
from meshcrew.tui.messages import PeersChanged, RecordsChanged
from meshcrew.tui.screens import membership
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.checkin import CheckInScreen
from meshcrew.tui.screens.forms import PromptScreen
from meshcrew.tui.screens.health import SyncHealthScreen
from meshcrew.tui.screens.invite import InviteScreen
from meshcrew.tui.screens.post import PostScreen
from meshcrew.tui.screens.proposals import ProposalsScreen
from meshcrew.tui.screens.settings import SettingsScreen
from meshcrew.tui.widgets.timeline import Timeline

SPARK_WIDTH = 10
"""Cycles shown in a member's energy sparkline."""

HEARD = "heard you"
"""The reaction ``h`` sends."""


class SpaceScreen(MeshcrewScreen):
    """One crew or dyad.

    Args:
        space_id: the space shown.
        summary: its summary if the caller has it at hand (saves reading it once).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the home screen"),
        Binding("c", "checkin", "Check in", tooltip="How you are arriving: text, energy, "
                "compass, an ask"),
        Binding("r", "reply", "Reply", tooltip="Reply to the selected post"),
        Binding("h", "heard", "Heard you", tooltip="React 'heard you' to the selected post"),
        Binding("enter", "open_post", "Open", tooltip="The selected post with every reply"),
        Binding("i", "invite", "Invite", tooltip="An invite code (text and QR) for this space"),
        Binding("v", "revoke_invite", "Revoke invite…", tooltip="Revoke an invite that can "
                "still admit someone", show=False),
        Binding("f", "fingerprints", "Fingerprints", tooltip="Show or hide members' "
                "fingerprints"),
        Binding("x", "propose_removal", "Remove…", tooltip="Propose removing a member (needs "
                "the consent of a majority)"),
        Binding("a", "consent", "Consent…", tooltip="Consent to an open removal proposal"),
        Binding("p", "proposals", "Proposals", tooltip="Decide together: proposals and who "
                "answered what"),
        Binding("e", "settings", "Settings", tooltip="The space's settings and their changes; "
                "propose a change", show=False),
        Binding("l", "leave", "Leave", tooltip="Leave this space"),
        Binding("s", "sync_health", "Sync", tooltip="Peers, what each lacks, rejected records"),
    ]

    def __init__(self, space_id: bytes, summary: SpaceSummary | None = None) -> None:
        super().__init__()
        self.space_id = space_id
        self._summary = summary
        self.show_fingerprints = False
        self.members: list[MemberEntry] = []
        self.holdings: Holdings = NO_HOLDINGS
        self.active: frozenset[bytes] = frozenset()
        self.cycle: CycleEntry | None = None
        self._log: list[PostEntry] = []
        self._froze = False
        """Whether building the cards froze the collector's view (undone on unmount)."""
        """The log the timeline's cards were made from."""

    def compose(self) -> ComposeResult:
        """Members and the cycle beside the timeline."""
        yield Header()
        with Horizontal():
            with Vertical(id="space-side"):
                yield OptionList(id="members")
                yield Static("", id="cycle")
            yield Timeline(receipts=self._receipt, tz=self.tz, id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        """Load the space and start at its newest post."""
        self.query_one("#space-side").border_title = "Members"
        self.query_one("#timeline").border_title = "Check-ins"
        self.reload()
        self.query_one(Timeline).focus()

    def on_unmount(self) -> None:
        """Let the collector see what the cards' freeze hid (this screen's widgets among it)."""
        if self._froze:
            thaw()

    # -- loading ------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the space again: summary, members, cycle, the timeline."""
        backend = self.backend
        summary = self._summary or self.attempt(lambda: backend.summary(self.space_id))
        self._summary = None  # read afresh next time
        if summary is None:
            return
        self.sub_title = f"{summary.name or 'locked: ' + summary.locked_because} · {summary.kind}"
        self.members = self.attempt(lambda: backend.members(self.space_id)) or []
        self.active = frozenset(m.key for m in self.members if m.status == "active")
        self.holdings = backend.holdings(self.space_id)
        self.cycle = None
        if summary.name is not None and summary.my_status == "active":
            self.cycle = self.attempt(lambda: backend.cycle(self.space_id))
        log = self.attempt(lambda: backend.log(self.space_id)) or []
        timeline = self.query_one(Timeline)
        cards = extend_cards(timeline.cards, self._log, log) if self._log else None
        if cards is None:
            with long_lived(len(log)):
                cards = build_cards(log)
            self._froze = self._froze or len(log) >= FREEZE_ABOVE
        self._log = log
        timeline.set_cards(cards)
        self._show_cycle()
        self._show_members(backend.status())
        self.mark_read(log)

    def _show_cycle(self) -> None:
        cycle = self.cycle
        text = Text()
        if cycle is not None:
            done = len(cycle.checkins)
            text.append(f"This cycle {day(cycle.start_ms, self.tz)} – "
                        f"{day(cycle.end_ms - 1, self.tz)}\n", style="bold")
            text.append(f"{done} of {done + len(cycle.missing)} checked in\n")
            if cycle.missing:
                names = ", ".join("you" if m.is_me else m.name for m in cycle.missing)
                text.append(f"still to check in: {names}\n")
        open_removals = [r for r in self.attempt(lambda: self.backend.removals(self.space_id))
                         or [] if not r.effective]
        for removal in open_removals:
            text.append(f"\nremoval of {removal.member_name} proposed: "
                        f"{len(removal.consents)} of {removal.needed} consents (a)",
                        style="italic")
        me = self.backend.identity.public_key
        for proposal in self.attempt(lambda: self.backend.proposals(self.space_id)) or []:
            if not proposal.decided:
                yours = " — your answer is awaited" if any(
                    w.key == me for w in proposal.waiting) else ""
                text.append(f"\nproposal {one_line(proposal.title)!r}: {proposal.status}"
                            f"{yours} (p)", style="italic")
        self.query_one("#cycle", Static).update(text)

    def _show_members(self, status: SyncStatus) -> None:
        energies = self._energy_per_cycle()
        now = self.backend.now()
        options = []
        for member in self.members:
            prompt = Text()
            peer = status.peer(member.key)
            online = member.is_me or (peer is not None and peer.connected)
            prompt.append("● " if online and member.status == "active" else "○ ",
                          style="bold" if online else "dim")
            name = member.name + (" (you)" if member.is_me else "")
            prompt.append(name, style="bold" if member.status == "active" else "dim strike")
            prompt.append(f"  {sparkline(energies.get(member.key, []), SPARK_WIDTH)}")
            prompt.append("\n  ")
            if member.status != "active":
                prompt.append(member.status, style="italic")
            elif member.is_me:
                prompt.append("this laptop", style="dim")
            elif not status.running:
                prompt.append("not connected", style="dim")
            else:
                seen = peer.last_seen_ms if peer is not None else None
                prompt.append("online" if online else f"last seen {ago(seen, now)}",
                              style="dim")
            if self.show_fingerprints:
                prompt.append(f"\n  {member.fingerprint}", style="dim")
            options.append(Option(prompt, id=member.key.hex()))
        members = self.query_one("#members", OptionList)
        highlighted = members.highlighted
        members.clear_options()
        members.add_options(options)
        if highlighted is not None and highlighted < len(options):
            members.highlighted = highlighted

    def _energy_per_cycle(self) -> dict[bytes, list[int]]:
        """Per member: the energy of their latest check-in in each cycle, oldest first."""
        series = self.attempt(lambda: self.backend.energy(self.space_id)) or {}
        cycle = self.cycle
        if cycle is None:
            return {key: [energy for _, energy in points] for key, points in series.items()}
        length = cycle.end_ms - cycle.start_ms
        out = {}
        for key, points in series.items():
            per_cycle: dict[int, int] = {}
            for ts, energy in points:
                per_cycle[(ts - cycle.start_ms) // length] = energy
            out[key] = [per_cycle[index] for index in sorted(per_cycle)]
        return out

    def _receipt(self, post: PostEntry) -> str:
        return receipt(post.author, post.seq, self.active, self.holdings, post.chain).text

    # -- events -------------------------------------------------------------------------------

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Reload when this space changed."""
        if self.space_id in message.space_ids:
            self.reload()

    def on_peers_changed(self, _message: PeersChanged) -> None:
        """Presence and receipts follow the node."""
        self.holdings = self.backend.holdings(self.space_id)
        self._show_members(self.backend.status())
        self.query_one(Timeline).refresh_receipts()

    # -- actions ------------------------------------------------------------------------------

    def _selected_post(self) -> PostEntry | None:
        card = self.query_one(Timeline).selected
        if card is None:
            self.notify("There is no post to act on yet.", severity="warning")
            return None
        return card.post

    def action_checkin(self) -> None:
        """Open the check-in form."""
        self.app.push_screen(CheckInScreen(self.space_id))

    def action_reply(self) -> None:
        """Reply to the selected post."""
        post = self._selected_post()
        if post is None:
            return

        def send(text: str | None) -> None:
            if text is not None and self.attempt(
                    lambda: self.backend.reply(post.id, text=text)) is not None:
                self.notify(f"Replied to {post.author_name}.")

        self.app.push_screen(PromptScreen(f"Reply to {post.author_name}",
                                          _context(post), placeholder="your reply"), send)

    def action_heard(self) -> None:
        """React "heard you" to the selected post."""
        post = self._selected_post()
        if post is not None and self.attempt(
                lambda: self.backend.react(post.id, emoji=HEARD)) is not None:
            self.notify(f"You told {post.author_name} you heard them.")

    def action_open_post(self) -> None:
        """The selected post in full, with every reply."""
        card = self.query_one(Timeline).selected
        if card is not None:
            self.app.push_screen(PostScreen(card, self._receipt(card.post)))

    def action_invite(self) -> None:
        """An invite code for this space."""
        self.app.push_screen(InviteScreen(self.space_id))

    def action_fingerprints(self) -> None:
        """Show or hide the members' fingerprints."""
        self.show_fingerprints = not self.show_fingerprints
        self._show_members(self.backend.status())

    def action_propose_removal(self) -> None:
        """Propose removing a member, after saying what that means."""
        membership.propose_removal(self, self.space_id, self.members)

    def action_consent(self) -> None:
        """Consent to an open removal proposal."""
        membership.consent(self, self.space_id)

    def action_settings(self) -> None:
        """The space's settings and the history of their changes."""
        self.app.push_screen(SettingsScreen(self.space_id))

    def action_revoke_invite(self) -> None:
        """Revoke an open invite, after saying what that means."""
        membership.revoke_invite(self, self.space_id)

    def action_proposals(self) -> None:
        """The space's proposals."""
        self.app.push_screen(ProposalsScreen(self.space_id))

    def action_leave(self) -> None:
        """Leave this space, after saying what that means."""
        membership.leave(self, self.space_id)

    def action_sync_health(self) -> None:
        """The sync-health screen."""
        self.app.push_screen(SyncHealthScreen())


def _context(post: PostEntry) -> str:
    text = str(post.fields.get("text") or post.fields.get("title") or "")
    return f"{post.author_name}: {' '.join(text.split())[:200]}"
