"""Proposals by consent: a space's proposals, one proposal with who answered what, and the
forms to propose, answer, amend and withdraw.

The outcome shown is the one every member works out from the records (docs/spaces.md,
Proposals); the screens only read it and ask the backend to sign answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from meshcrew.errors import MeshcrewError
from meshcrew.service import ProposalEntry
from meshcrew.service.settings_text import parse_change
from meshcrew.spaces.posts import MAX_NOTE_CHARS, MAX_TITLE_CHARS
from meshcrew.tui.formatting import day, one_line, when
from meshcrew.tui.messages import RecordsChanged
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.forms import ConfirmScreen, Field, FieldsScreen, PromptScreen

DAY_MS = 86_400_000
MAX_DEADLINE_DAYS = 366

_STATUS = {"open": "open", "blocked": "blocked", "passed": "passed",
           "expired": "expired", "withdrawn": "withdrawn"}
_STYLE = {"open": "bold", "blocked": "bold red", "passed": "bold green", "expired": "dim",
          "withdrawn": "dim"}
_POSITIONS = {"consent": "consents", "stand_aside": "stands aside", "object": "objects"}


def outcome_line(entry: ProposalEntry) -> str:
    """Where a proposal stands, in words."""
    answered = len(entry.answers) + 1  # the proposer's consent
    total = len(entry.electorate)
    if entry.status == "passed":
        how = "everyone answered, no objection" if not entry.waiting else \
            f"{answered} of {total} answered by the deadline, no objection"
        return f"Passed: {how}."
    if entry.status == "blocked":
        names = [a.name for a in entry.answers if a.position == "object"]
        final = "at the deadline" if entry.decided else "while the objection stands"
        return f"Blocked {final}: {', '.join(names)} object{'s' if len(names) == 1 else ''}."
    if entry.status == "expired":
        return (f"Expired: {answered} of {total} answered by the deadline; "
                f"{entry.needed} were needed.")
    if entry.status == "withdrawn":
        return "Withdrawn by its proposer (or the proposer left)."
    return f"Open: {answered} of {total} answered; waiting for " + (
        ", ".join(k.name for k in entry.waiting) or "no one") + "."


class ProposalsScreen(MeshcrewScreen):
    """A space's proposals, open ones first.

    Args:
        space_id: the space.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the space"),
        Binding("enter", "open_proposal", "Open", tooltip="The proposal with who answered what"),
        Binding("n", "new_proposal", "Propose", tooltip="Put a proposal to the members"),
    ]

    def __init__(self, space_id: bytes) -> None:
        super().__init__()
        self.space_id = space_id
        self.entries: list[ProposalEntry] = []

    def compose(self) -> ComposeResult:
        """The table of proposals and a line under it."""
        yield Header()
        yield DataTable(id="proposals", cursor_type="row")
        yield Static("", id="proposals-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table and fill it."""
        self.query_one("#proposals", DataTable).add_columns(
            "state", "proposal", "by", "answered", "deadline")
        self.reload()
        self.query_one("#proposals", DataTable).focus()

    def reload(self) -> None:
        """Read the proposals again."""
        summary = self.attempt(lambda: self.backend.summary(self.space_id))
        found = self.attempt(lambda: self.backend.proposals(self.space_id))
        if summary is None or found is None:
            return
        self.sub_title = f"{summary.name or 'locked space'} · proposals"
        self.entries = sorted(found, key=lambda e: (e.decided, -e.ts))
        table = self.query_one("#proposals", DataTable)
        row = table.cursor_row
        table.clear()
        for entry in self.entries:
            table.add_row(
                Text(_STATUS[entry.status], style=_STYLE[entry.status]),
                one_line(entry.title), entry.proposer_name,
                f"{len(entry.answers) + 1} of {len(entry.electorate)}",
                day(entry.deadline_ms, self.tz), key=entry.id.hex())
        if self.entries:
            table.move_cursor(row=min(row, len(self.entries) - 1))
        self.query_one("#proposals-hint", Static).update(
            "enter opens a proposal · n proposes" if self.entries else
            "No proposals yet. Press n to put one to the members: they consent, stand aside "
            "or object.")

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Reload when the space changed."""
        if self.space_id in message.space_ids:
            self.reload()

    @on(DataTable.RowSelected, "#proposals")
    def _selected(self) -> None:
        self.action_open_proposal()

    def action_open_proposal(self) -> None:
        """The selected proposal."""
        table = self.query_one("#proposals", DataTable)
        if self.entries and table.row_count:
            entry = self.entries[min(table.cursor_row, len(self.entries) - 1)]
            self.app.push_screen(ProposalScreen(entry.id))

    def action_new_proposal(self) -> None:
        """The form for a new proposal."""
        propose(self, self.space_id)


def propose(screen: MeshcrewScreen, space_id: bytes) -> None:
    """Ask for a title, a text, a deadline and an optional settings change, then put the
    proposal to the members."""
    def submit(values: dict[str, str | bool]) -> str | None:
        days = str(values["days"])
        deadline = None
        if days:
            if not days.isdigit() or not 1 <= int(days) <= MAX_DEADLINE_DAYS:
                return f"The deadline is a whole number of days, 1 to {MAX_DEADLINE_DAYS}."
            deadline = screen.backend.now() + int(days) * DAY_MS
        try:
            pairs = [p for p in str(values["change"]).split(";") if p.strip()]
            change = parse_change(pairs)
            screen.backend.propose(space_id, title=str(values["title"]),
                                   text=str(values["text"]), deadline_ms=deadline,
                                   change=None if change.empty else change)
        except MeshcrewError as exc:
            return str(exc)
        return None

    def done(values: dict[str, str | bool] | None) -> None:
        if values is not None:
            screen.notify("Proposed; the members answer now.")

    screen.app.push_screen(FieldsScreen("New proposal", [
        Field("title", "What you propose", required=True, max_length=MAX_TITLE_CHARS),
        Field("text", "The proposal in full"),
        Field("days", "Days until the deadline",
              placeholder="default: the end of the next check-in cycle", max_length=3),
        Field("change", "Settings it changes once passed",
              placeholder="name=Sun; rhythm=weekly:thu; quorum=60"),
    ], submit=submit), done)


class ProposalScreen(MeshcrewScreen):
    """One proposal: its text, its outcome, and each member's answer.

    Args:
        proposal_id: the proposal's record id.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the proposals"),
        Binding("c", "consent", "Consent", tooltip="Support it going ahead"),
        Binding("s", "stand_aside", "Stand aside", tooltip="Not take part, without blocking it"),
        Binding("o", "object", "Object", tooltip="Block it: it must not go ahead as it is"),
        Binding("e", "amend", "Amend", tooltip="Change the title or text (your proposal)"),
        Binding("w", "withdraw", "Withdraw", tooltip="Withdraw it (your proposal)"),
    ]

    def __init__(self, proposal_id: bytes) -> None:
        super().__init__()
        self.proposal_id = proposal_id
        self.entry: ProposalEntry | None = None

    def compose(self) -> ComposeResult:
        """The proposal above the table of answers."""
        yield Header()
        with VerticalScroll():
            yield Static("", id="proposal-text", classes="section")
            yield Static("", id="proposal-outcome", classes="section")
            yield DataTable(id="answers", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table and fill it."""
        self.query_one("#answers", DataTable).add_columns("member", "answer", "why", "when")
        self.reload()

    def reload(self) -> None:
        """Read the proposal again."""
        entry = self.attempt(lambda: self.backend.proposal(self.proposal_id))
        if entry is None:
            return
        self.entry = entry
        self.sub_title = f"proposal · {_STATUS[entry.status]}"
        head = Text()
        head.append(f"{entry.title}\n", style="bold")
        head.append(f"proposed by {entry.proposer_name} on {when(entry.ts, self.tz)}; "
                    f"deadline {when(entry.deadline_ms, self.tz)}", style="dim")
        if entry.amendments:
            head.append(f"; amended {entry.amendments}×", style="dim")
        if entry.text:
            head.append(f"\n\n{entry.text}")
        if entry.change is not None:
            what = ", ".join(f"{k.replace('_', ' ')} → {v}" for k, v in entry.change.items())
            head.append(f"\n\nChanges the settings: {what}", style="bold")
            if entry.carried_out:
                head.append(" (made)", style="green")
        self.query_one("#proposal-text", Static).update(head)
        outcome = Text(outcome_line(entry), style=_STYLE[entry.status])
        quorum = "everyone" if entry.quorum == 100 else f"{entry.quorum}% ({entry.needed})"
        outcome.append(f"\nQuorum at the deadline: {quorum}.", style="dim")
        self.query_one("#proposal-outcome", Static).update(outcome)
        table = self.query_one("#answers", DataTable)
        table.clear()
        me = self.backend.identity.public_key
        table.add_row(entry.proposer_name + (" (you)" if entry.proposer == me else ""),
                      "proposed it (consents)", "", when(entry.ts, self.tz))
        for answer in entry.answers:
            earlier = " (to an earlier version)" if answer.before_amendment else ""
            table.add_row(answer.name + (" (you)" if answer.member == me else ""),
                          Text(_POSITIONS[answer.position] + earlier,
                               style="red" if answer.position == "object" else ""),
                          one_line(answer.reason), when(answer.ts, self.tz))
        for waiting in entry.waiting:
            table.add_row(waiting.name + (" (you)" if waiting.key == me else ""),
                          Text("has not answered", style="dim"), "", "")

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Reload when its space changed."""
        if self.entry is None or self.entry.space in message.space_ids:
            self.reload()

    def _act(self, action: Callable[[], bytes], done: str) -> None:
        if self.attempt(action) is not None:
            self.notify(done)
            self.reload()

    def action_consent(self) -> None:
        """Consent."""
        self._act(lambda: self.backend.answer(self.proposal_id, position="consent"),
                  "You consent.")

    def _with_reason(self, position: str, title: str, done: str) -> None:
        def send(reason: str | None) -> None:
            if reason is not None:
                self._act(lambda: self.backend.answer(self.proposal_id, position=position,
                                                      reason=reason), done)

        context = self.entry.title if self.entry is not None else ""
        self.app.push_screen(PromptScreen(title, context, placeholder="why",
                                          max_length=MAX_NOTE_CHARS), send)

    def action_stand_aside(self) -> None:
        """Stand aside, with a reason."""
        self._with_reason("stand_aside", "Stand aside: why?", "You stand aside.")

    def action_object(self) -> None:
        """Object, with a reason."""
        self._with_reason("object", "Object: why must it not go ahead as it is?",
                          "You object; the proposal is blocked while you do.")

    def action_amend(self) -> None:
        """Change the text of this member's open proposal."""
        def send(text: str | None) -> None:
            if text is not None:
                self._act(lambda: self.backend.amend_proposal(self.proposal_id, text=text),
                          "Amended; earlier answers are marked as such.")

        context = self.entry.text if self.entry is not None else ""
        self.app.push_screen(PromptScreen("Amend: the new text", one_line(context),
                                          placeholder="the proposal in full"), send)

    def action_withdraw(self) -> None:
        """Withdraw this member's open proposal, after asking."""
        def go(confirmed: bool | None) -> None:
            if confirmed:
                self._act(lambda: self.backend.withdraw_proposal(self.proposal_id),
                          "You withdrew the proposal.")

        title = self.entry.title if self.entry is not None else "this proposal"
        self.app.push_screen(ConfirmScreen(
            f"Withdraw {title!r}?", "It ends as withdrawn: no one can answer it any more, "
            "and what was answered stays visible. To propose it again, make a new proposal.",
            "Withdraw"), go)
