"""Join: paste a code; a progress bar while the history arrives; clear errors when it fails."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Static

from meshcrew.errors import MeshcrewError
from meshcrew.tui.messages import JoinProgressed
from meshcrew.tui.screens.base import MeshcrewModal


class JoinScreen(MeshcrewModal[bytes]):
    """Join a space with an invite code; dismisses with the space id."""

    def compose(self) -> ComposeResult:
        """The code field, the progress, the buttons."""
        with Vertical(classes="dialog"):
            yield Static("Join with an invite code", classes="title")
            yield Static("Paste the code a member gave you (it starts with mc1-). Your node "
                         "reaches theirs, proves the code, and receives the history.",
                         classes="hint")
            yield Input(placeholder="mc1-…", id="code")
            yield ProgressBar(id="join-progress", show_eta=False)
            yield Label("", id="join-stage", classes="hint")
            yield Label("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Join", id="join", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """No progress until a join starts."""
        self.query_one("#join-progress").display = False
        self.query_one("#code", Input).focus()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#join")
    def start(self) -> None:
        """Start joining (the node may take a while to reach the inviter)."""
        code = self.query_one("#code", Input).value.strip()
        error = self.query_one("#form-error", Label)
        if not code:
            error.update("Paste the invite code first.")
            return
        error.update("")
        bar = self.query_one("#join-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.query_one("#join", Button).disabled = True
        self.query_one("#join-stage", Label).update("reaching the inviter…")
        self.run_worker(self._join(code), exclusive=True, group="join")

    async def _join(self, code: str) -> None:
        try:
            space_id = await self.backend.join(code)
        except MeshcrewError as exc:
            self.query_one("#form-error", Label).update(str(exc))
            self.query_one("#join-progress").display = False
            self.query_one("#join-stage", Label).update("")
            self.query_one("#join", Button).disabled = False
            return
        self.notify("Joined. You can read the crew once a member's node sends you the keys.",
                    title="Joined")
        self.dismiss(space_id)

    def on_join_progressed(self, message: JoinProgressed) -> None:
        """Move the bar as the history arrives."""
        bar = self.query_one("#join-progress", ProgressBar)
        bar.update(total=message.expected, progress=message.received)
        self.query_one("#join-stage", Label).update(message.stage)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.workers.cancel_group(self, "join")
        self.dismiss(None)
