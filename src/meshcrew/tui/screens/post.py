"""One post in full: its whole text, compass, ask, every reply and reaction, who holds it."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from meshcrew.spaces import COMPASS_SCALES
from meshcrew.tui.cards import Card
from meshcrew.tui.formatting import energy_text, plural, short_id, when
from meshcrew.tui.screens.base import MeshcrewModal


class PostScreen(MeshcrewModal[None]):
    """Read a post and all its answers; escape closes it.

    Args:
        card: the post with its answers.
        receipt: who holds it, e.g. ``seen by 3 of 5``.
    """

    def __init__(self, card: Card, receipt: str) -> None:
        super().__init__()
        self.card = card
        self.receipt = receipt

    def compose(self) -> ComposeResult:
        """The post, then its answers."""
        with VerticalScroll(classes="dialog"):
            yield Static(self.post_text(), id="post-body")

    def post_text(self) -> Text:
        """Everything about the post, as text."""
        post, fields = self.card.post, self.card.post.fields
        text = Text()
        text.append(post.author_name, style="bold")
        text.append(f"  {post.kind}  {when(post.ts, self.tz)}  id {short_id(post.id)}  "
                    f"{self.receipt}\n\n", style="dim")
        if fields.get("title"):
            text.append(f"{fields['title']}\n", style="bold")
        if fields.get("text"):
            text.append(f"{fields['text']}\n")
        if post.kind == "checkin":
            text.append(f"\nenergy {energy_text(int(fields.get('energy', 0)))}\n")
            compass = fields.get("compass") or {}
            for scale in COMPASS_SCALES:
                if scale.key in compass:
                    text.append(f"  {scale.question}  {compass[scale.key]} "
                                f"({scale.low} 1 – 5 {scale.high})\n", style="dim")
            if fields.get("ask"):
                text.append(f"\nask: {fields['ask']}\n", style="italic")
        if post.kind == "gathering":
            text.append(f"\n{when(int(fields.get('when_ms', 0)), self.tz)} · "
                        f"{fields.get('where') or 'place to be announced'}\n")
        if self.card.replies:
            text.append(f"\n{plural(len(self.card.replies), 'answer')}\n", style="bold")
            for reply in self.card.replies:
                text.append(f"↳ {reply.author_name}", style="bold")
                label = " (follow-up, closes it)" if reply.fields.get("closes") else \
                    " (follow-up)" if reply.kind == "followup" else ""
                text.append(f"{label}  {when(reply.ts, self.tz)}\n", style="dim")
                text.append(f"  {reply.fields.get('text', '')}\n")
        if self.card.reactions:
            counts = Counter(str(r.fields.get("text")) for r in self.card.reactions)
            names = ", ".join(sorted({r.author_name for r in self.card.reactions}))
            text.append("\n" + " · ".join(f"{t} ×{n}" for t, n in counts.items()))
            text.append(f"  from {names}\n", style="dim")
        text.append("\nescape closes", style="dim italic")
        return text
