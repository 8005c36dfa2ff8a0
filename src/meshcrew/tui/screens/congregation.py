"""A congregation: the member directory, its crews and whether each is open, who is looking for
a crew, gatherings, and asks and offers with their follow-ups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from meshcrew.errors import InputError, MeshcrewError
from meshcrew.service import BoardItem, BoardView, MemberEntry
from meshcrew.spaces.posts import MAX_NOTE_CHARS, MAX_TITLE_CHARS
from meshcrew.tui.formatting import day, one_line, when
from meshcrew.tui.messages import RecordsChanged
from meshcrew.tui.screens import membership
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.create_space import CreateSpaceScreen
from meshcrew.tui.screens.forms import Field, FieldsScreen
from meshcrew.tui.screens.health import SyncHealthScreen
from meshcrew.tui.screens.invite import InviteScreen
from meshcrew.tui.screens.proposals import ProposalsScreen
from meshcrew.tui.screens.settings import SettingsScreen

WHEN_FORMAT = "%Y-%m-%d %H:%M"

Values = dict[str, str | bool]
PostFields = Callable[[Values], dict[str, object]]
"""Turns a form's values into the fields of a post (raises InputError if they are wrong)."""


class CongregationScreen(MeshcrewScreen):
    """The board of one congregation.

    Args:
        space_id: the congregation.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the home screen"),
        Binding("a", "ask", "Ask", tooltip="Ask the congregation for support"),
        Binding("o", "offer", "Offer", tooltip="Offer help, skills or resources"),
        Binding("u", "follow_up", "Follow up", tooltip="Follow up on the selected ask or offer"),
        Binding("g", "gathering", "Gathering", tooltip="Call a gathering: when and where"),
        Binding("f", "looking", "Looking for crew", tooltip="Say whether you are looking for "
                "a crew"),
        Binding("c", "crew_card", "Crew card", tooltip="Say whether one of your crews is open "
                "to new crewmates"),
        Binding("n", "new_crew", "New crew", tooltip="Start a crew in this congregation"),
        Binding("p", "proposals", "Proposals", tooltip="Decide together: proposals and who "
                "answered what"),
        Binding("e", "settings", "Settings", tooltip="The space's settings and their changes; "
                "propose a change", show=False),
        Binding("i", "invite", "Invite", tooltip="An invite code for this congregation"),
        Binding("v", "revoke_invite", "Revoke invite…", tooltip="Revoke an invite that can "
                "still admit someone", show=False),
        Binding("l", "leave", "Leave", tooltip="Leave this congregation"),
        Binding("s", "sync_health", "Sync", tooltip="Peers, what each lacks, rejected records"),
    ]

    def __init__(self, space_id: bytes) -> None:
        super().__init__()
        self.space_id = space_id
        self.board: BoardView | None = None
        self.members: list[MemberEntry] = []

    def compose(self) -> ComposeResult:
        """One tab per part of the board."""
        yield Header()
        with TabbedContent(id="board"):
            with TabPane("Asks & offers", id="tab-items"):
                yield DataTable(id="items", cursor_type="row")
                yield Static("", id="item-detail", classes="section")
            with TabPane("Crews", id="tab-crews"):
                yield DataTable(id="crews", cursor_type="row")
            with TabPane("Looking for a crew", id="tab-looking"):
                yield DataTable(id="looking", cursor_type="row")
            with TabPane("Gatherings", id="tab-gatherings"):
                yield DataTable(id="gatherings", cursor_type="row")
            with TabPane("Directory", id="tab-directory"):
                yield DataTable(id="directory", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the tables and fill them."""
        columns = {
            "items": ("what", "title", "by", "when", "follow-ups", "state"),
            "crews": ("crew", "open to new crewmates", "note", "you"),
            "looking": ("member", "note", "since"),
            "gatherings": ("when", "title", "where", "called by"),
            "directory": ("name", "fingerprint", "status", "joined", "looking", "bio"),
        }
        for table_id, names in columns.items():
            self.query_one(f"#{table_id}", DataTable).add_columns(*names)
        self.reload()

    def reload(self) -> None:
        """Read the board and the members again."""
        summary = self.attempt(lambda: self.backend.summary(self.space_id))
        self.board = self.attempt(lambda: self.backend.board(self.space_id))
        self.members = self.attempt(lambda: self.backend.members(self.space_id)) or []
        if summary is None or self.board is None:
            return
        self.sub_title = f"{summary.name or 'locked congregation'} · congregation · " \
                         f"{summary.members} members"
        board = self.board
        looking = {p.author: p for p in board.looking_for_crew}
        mine = {s.id for s in self.backend.spaces()
                if s.parent == self.space_id and s.my_status == "active"}
        self._fill("items", [(item.post.id, self._item_row(item)) for item in board.items])
        self._fill("crews", [(card.id, (
            str(card.fields.get("name", "")), "open" if card.fields.get("open") else "closed",
            one_line(str(card.fields.get("note", ""))),
            "your crew" if card.fields.get("crew") in mine else ""))
            for card in board.crew_cards])
        self._fill("looking", [(post.id, (post.author_name,
                                          one_line(str(post.fields.get("note", ""))),
                                          day(post.ts, self.tz)))
                               for post in board.looking_for_crew])
        self._fill("gatherings", [(post.id, (
            when(int(post.fields.get("when_ms", 0)), self.tz), str(post.fields.get("title")),
            one_line(str(post.fields.get("where", ""))) or "to be announced",
            post.author_name)) for post in board.gatherings])
        self._fill("directory", [(member.key, (
            member.name + (" (you)" if member.is_me else ""), member.fingerprint,
            member.status, day(member.joined_ts, self.tz),
            "yes" if member.key in looking else "", one_line(member.bio)))
            for member in self.members])
        self._show_item()
        self.mark_read(self.attempt(lambda: self.backend.log(self.space_id)) or [])

    def _item_row(self, item: BoardItem) -> tuple[str, ...]:
        kind = {"ask": "ask", "offer": "offer", "checkin": "ask (check-in)"}.get(
            item.post.kind, item.post.kind)
        return (kind, item.title, item.post.author_name, day(item.post.ts, self.tz),
                str(len(item.followups)), "closed" if item.closed else "open")

    def _fill(self, table_id: str, rows: list[tuple[bytes, tuple[str, ...]]]) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        row = table.cursor_row
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key.hex())
        if rows:
            table.move_cursor(row=min(row, len(rows) - 1))

    def _selected_item(self) -> BoardItem | None:
        table = self.query_one("#items", DataTable)
        if self.board is None or not self.board.items or table.row_count == 0:
            return None
        return self.board.items[min(table.cursor_row, len(self.board.items) - 1)]

    @on(DataTable.RowHighlighted, "#items")
    def _show_item(self) -> None:
        item = self._selected_item()
        text = Text()
        if item is not None:
            body = str(item.post.fields.get("text", "")) if item.post.kind != "checkin" \
                else ""
            text.append(f"{item.title}\n", style="bold")
            if body:
                text.append(f"{body}\n")
            for followup in item.followups:
                text.append(f"↳ {followup.author_name}", style="bold")
                text.append(f" {when(followup.ts, self.tz)}"
                            f"{' (closes it)' if followup.fields.get('closes') else ''}: ",
                            style="dim")
                text.append(f"{one_line(str(followup.fields.get('text', '')))}\n")
        self.query_one("#item-detail", Static).update(text)

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Reload when the congregation changed."""
        if self.space_id in message.space_ids:
            self.reload()

    # -- actions ------------------------------------------------------------------------------

    def _post_form(self, kind: str, title: str, fields: list[Field], make: PostFields, *,
                   checkbox: str | None = None) -> None:
        """A form whose values ``make`` turns into the fields of a post of ``kind``."""
        def submit(values: Values) -> str | None:
            try:
                post = self.backend.make_post(kind, **make(values))
                self.backend.post(self.space_id, post)
            except MeshcrewError as exc:
                return str(exc)
            return None

        def done(values: Values | None) -> None:
            if values is not None:
                self.notify(f"Posted: {title.lower()}.")

        self.app.push_screen(FieldsScreen(title, fields, checkbox=checkbox, submit=submit), done)

    def action_ask(self) -> None:
        """Ask the congregation for support."""
        self._post_form("ask", "New ask", [
            Field("title", "What you ask for", required=True, max_length=MAX_TITLE_CHARS),
            Field("text", "More about it")], lambda v: {"title": v["title"], "text": v["text"]})

    def action_offer(self) -> None:
        """Offer something."""
        self._post_form("offer", "New offer", [
            Field("title", "What you offer", required=True, max_length=MAX_TITLE_CHARS),
            Field("text", "More about it")], lambda v: {"title": v["title"], "text": v["text"]})

    def action_follow_up(self) -> None:
        """Follow up on the selected ask or offer (its author may close it)."""
        item = self._selected_item()
        if item is None:
            self.notify("Select an ask or offer first (Asks & offers tab).", severity="warning")
            return
        mine = item.post.author == self.backend.identity.public_key
        self._post_form("followup", f"Follow up: {item.title}",
                        [Field("text", "Your follow-up", required=True)],
                        lambda v: {"to": item.post.id, "text": v["text"],
                                   "closes": bool(v.get("checkbox", False))},
                        checkbox="This settles my own ask or offer (close it)" if mine else None)

    def action_gathering(self) -> None:
        """Call a gathering."""
        def fields(values: Values) -> dict[str, object]:
            try:
                moment = datetime.strptime(str(values["when"]), WHEN_FORMAT)
            except ValueError:
                today = datetime.fromtimestamp(self.backend.now() / 1000, self.tz or UTC)
                raise InputError("Write the time as YYYY-MM-DD HH:MM, e.g. "
                                 f"{today:%Y-%m-%d} 18:30.") from None
            aware = moment.replace(tzinfo=self.tz) if self.tz else moment.astimezone()
            return {"title": values["title"], "when_ms": int(aware.timestamp() * 1000),
                    "where": values["where"]}

        self._post_form("gathering", "New gathering", [
            Field("title", "What", required=True, max_length=MAX_TITLE_CHARS),
            Field("when", "When", placeholder="YYYY-MM-DD HH:MM", required=True),
            Field("where", "Where (a place or a link)")], fields)

    def action_looking(self) -> None:
        """Say you are (or no longer are) looking for a crew."""
        board = self.board
        me = self.backend.identity.public_key
        looking = board is not None and any(p.author == me for p in board.looking_for_crew)
        if looking:
            post = self.attempt(lambda: self.backend.make_post("looking_for_crew",
                                                               looking=False))
            if post is not None and self.attempt(
                    lambda: self.backend.post(self.space_id, post)) is not None:
                self.notify("You are no longer listed as looking for a crew.")
            return
        self._post_form("looking_for_crew", "Looking for a crew",
                        [Field("note", "A note for crews (what you look for)",
                               max_length=MAX_NOTE_CHARS)],
                        lambda v: {"looking": True, "note": v["note"]})

    def action_crew_card(self) -> None:
        """Say whether one of your crews here is open to new crewmates."""
        crews = [s for s in self.backend.spaces()
                 if s.parent == self.space_id and s.my_status == "active" and s.name]
        if not crews:
            self.notify("You are in no crew of this congregation yet (n starts one).",
                        severity="warning")
            return

        def picked(choice: str | None) -> None:
            if choice is None:
                return
            crew_hex, _, state = choice.partition(":")
            crew = next(c for c in crews if c.id.hex() == crew_hex)
            post = self.attempt(lambda: self.backend.make_post(
                "crew_card", crew=crew.id, name=crew.name, open=state == "open"))
            if post is not None and self.attempt(
                    lambda: self.backend.post(self.space_id, post)) is not None:
                self.notify(f"{crew.name} is listed as {state}.")

        self.app.push_screen(membership.PickScreen(
            "Which crew, open or closed to new crewmates?",
            [(f"{c.id.hex()}:{state}", f"{c.name}: {state}") for c in crews
             for state in ("open", "closed")]), picked)

    def action_new_crew(self) -> None:
        """Start a crew (choose this congregation in the form)."""
        self.app.push_screen(CreateSpaceScreen())

    def action_settings(self) -> None:
        """The space's settings and the history of their changes."""
        self.app.push_screen(SettingsScreen(self.space_id))

    def action_revoke_invite(self) -> None:
        """Revoke an open invite, after saying what that means."""
        membership.revoke_invite(self, self.space_id)

    def action_proposals(self) -> None:
        """The congregation's proposals."""
        self.app.push_screen(ProposalsScreen(self.space_id))

    def action_invite(self) -> None:
        """An invite code for the congregation."""
        self.app.push_screen(InviteScreen(self.space_id))

    def action_leave(self) -> None:
        """Leave the congregation, after saying what that means."""
        membership.leave(self, self.space_id)

    def action_sync_health(self) -> None:
        """The sync-health screen."""
        self.app.push_screen(SyncHealthScreen())

