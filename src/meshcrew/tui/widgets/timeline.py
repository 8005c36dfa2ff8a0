"""The check-in timeline: a Line API widget that renders only the lines on screen.

A space may hold 100,000 posts, so the timeline is not a tree of widgets. It keeps the cards
(:mod:`meshcrew.tui.cards`), the y offset where each starts (a prefix sum of card heights,
rebuilt when the cards or the width change), and builds the lines of a card only when one of
them is about to be painted, caching a few hundred. Finding the card under a line is a bisect.
The cursor selects one card; the screen acts on :attr:`Timeline.selected`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import tzinfo
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from meshcrew.service import PostEntry
from meshcrew.tui.cards import Card, card_lines, card_starts
from meshcrew.tui.memory import HOLD_S, CollectorHold

Receipts = Callable[[PostEntry], str]
"""Gives the receipt line of a post, e.g. ``seen by 3 of 5``."""

CACHED_CARDS = 96
"""Cards whose lines are kept: a few screens' worth (each Strip carries several caches of its
own, so a bigger cache mostly gives Python's cycle collector more to scan)."""

_ROLES = ("author", "meta", "body", "energy", "ask", "reply", "reaction", "muted")


class Timeline(ScrollView, can_focus=True):
    """The cards of a space, oldest at the top; opens at the newest."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"timeline--{role}" for role in _ROLES} | {
        "timeline--cursor"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Previous", show=False),
        Binding("down,j", "cursor(1)", "Next", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "Oldest", show=False),
        Binding("end", "jump(-1)", "Newest", show=False),
    ]

    cursor: reactive[int] = reactive(-1, always_update=True, init=False)

    def __init__(self, *, receipts: Receipts, tz: tzinfo | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self._receipts = receipts
        self._tz = tz
        self.cards: list[Card] = []
        self._starts: list[int] = [0]
        self._width = 0
        self._lines: LRUCache[tuple[int, bool], list[Strip]] = LRUCache(CACHED_CARDS)
        self._styles: dict[str, Style] = {}
        self._collector = CollectorHold()
        self._release_timer: Timer | None = None

    # -- data ---------------------------------------------------------------------------------

    @property
    def selected(self) -> Card | None:
        """The card under the cursor."""
        return self.cards[self.cursor] if 0 <= self.cursor < len(self.cards) else None

    def set_cards(self, cards: list[Card]) -> None:
        """Show ``cards``; the cursor stays on the same post, or goes to the newest."""
        previous = self.selected
        at_end = self.cursor >= len(self.cards) - 1
        self.cards = cards
        self._relayout()
        index = len(cards) - 1
        if previous is not None and not at_end:
            index = next((i for i in range(len(cards) - 1, -1, -1)
                          if cards[i].post.id == previous.post.id), index)
        self.cursor = index

    def refresh_receipts(self) -> None:
        """Repaint after the holdings changed (receipts are read while painting)."""
        self._lines.clear()
        self.refresh()

    # -- layout -------------------------------------------------------------------------------

    def _layout_width(self) -> int:
        return max(20, self.scrollable_content_region.width)

    def _relayout(self) -> None:
        if not self.size.width:
            return  # not laid out yet: on_resize lays the cards out at the real width
        width = self._layout_width()
        self._width = width
        self._starts = card_starts(self.cards, width)
        self._lines.clear()
        self.virtual_size = Size(width, self._starts[-1])
        self.refresh()

    def on_resize(self) -> None:
        """Lay out again when the width changed (text wraps differently)."""
        if self._layout_width() != self._width:
            self._relayout()
            self._scroll_to_cursor()

    def notify_style_update(self) -> None:
        """Drop cached lines and styles when the theme or styles change."""
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()

    def _style(self, role: str) -> Style:
        style = self._styles.get(role)
        if style is None:
            style = self._styles[role] = self.get_component_rich_style(
                f"timeline--{role}", partial=True)
        return style

    @property
    def laid_out(self) -> bool:
        """Whether the cards have their lines at the current width."""
        return len(self._starts) == len(self.cards) + 1

    def card_region(self, index: int) -> Region:
        """Where card ``index`` lies in the virtual space."""
        top = self._starts[index]
        return Region(0, top, self._width, self._starts[index + 1] - top)

    # -- painting -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One line of the view: a line of the card under it."""
        scroll_x, scroll_y = self.scroll_offset
        line_y = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.laid_out or line_y >= self._starts[-1]:
            return Strip.blank(width, base)
        index = bisect_right(self._starts, line_y) - 1
        strips = self._card_strips(index)
        strip = strips[min(line_y - self._starts[index], len(strips) - 1)]
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _card_strips(self, index: int) -> list[Strip]:
        is_cursor = index == self.cursor
        cached = self._lines.get((index, is_cursor))
        if cached is not None:
            return cached
        card = self.cards[index]
        lines = card_lines(card, self._width, style=self._style, tz=self._tz,
                           receipt=self._receipts(card.post))
        console = self.app.console
        base = self.rich_style
        # One background for the whole line (the cursor's, or the widget's), over whatever
        # the roles' styles would put behind the text.
        background = Style(bgcolor=(self._style("cursor") if is_cursor else base).bgcolor)
        line_style = base + background
        strips = [Strip(list(Segment.apply_style(text.render(console),
                                                 post_style=background)))
                  .crop_extend(0, self._width, line_style) for text in lines]
        self._lines[(index, is_cursor)] = strips
        return strips

    # -- cursor -------------------------------------------------------------------------------

    def _while_keys_come(self) -> None:
        """Keep the cycle collector paused until the keys stop (see :mod:`..memory`)."""
        self._collector.hold()
        if self._release_timer is None:
            self._release_timer = self.set_timer(HOLD_S, self._release_collector)
        else:
            self._release_timer.reset()

    def _release_collector(self) -> None:
        self._release_timer = None
        self._collector.release()

    def on_unmount(self) -> None:
        """Never leave the collector paused."""
        self._collector.release()

    def watch_cursor(self, old: int, new: int) -> None:
        """Repaint the two cards and keep the new one in view."""
        for index in (old, new):
            if 0 <= index < len(self.cards):
                self._lines.discard((index, False))
                self._lines.discard((index, True))
        self.refresh()
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        if self.laid_out and 0 <= self.cursor < len(self.cards):
            self.scroll_to_region(self.card_region(self.cursor), animate=False, force=True)

    def action_cursor(self, step: int) -> None:
        """Move the cursor ``step`` cards (negative: up)."""
        self._while_keys_come()
        if self.cards:
            self.cursor = max(0, min(len(self.cards) - 1, self.cursor + step))

    def action_page(self, direction: int) -> None:
        """Move a screenful up or down."""
        self._while_keys_come()
        if not self.cards or not self.laid_out:
            return
        target = max(0, min(self._starts[-1] - 1, self._starts[max(self.cursor, 0)]
                            + direction * max(1, self.scrollable_content_region.height)))
        self.cursor = bisect_right(self._starts, target) - 1

    def action_jump(self, index: int) -> None:
        """Go to the oldest (0) or newest (-1) card."""
        self._while_keys_come()
        if self.cards:
            self.cursor = index % len(self.cards)
