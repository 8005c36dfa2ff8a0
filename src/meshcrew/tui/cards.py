"""The space timeline as cards: one card per post, with its replies and reactions inline.

A card's height depends only on the post and the width (a text of up to two lines, one line
per reply up to :data:`MAX_REPLIES`, one line of reactions): the part that does not depend on
the width and the text's length are measured once per card, so laying out 100,000 cards at a
new width is one pass of additions (a few tens of milliseconds); the lines
themselves are built only for the cards on screen (:func:`card_lines`). The whole post is one
key press away in the post screen.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from itertools import accumulate

from rich.style import StyleType
from rich.text import Text

from meshcrew.service import PostEntry
from meshcrew.spaces import COMPASS_SCALES
from meshcrew.tui.formatting import day, energy_text, one_line, when

MAX_REPLIES = 3
"""Replies shown inline; more are counted on one extra line."""

TEXT_LINES = 2
"""Lines of a post's text shown inline."""

ANSWER_KINDS = frozenset({"reply", "reaction", "followup"})
HIDDEN_KINDS = frozenset({"profile", "answer", "amend", "withdraw"})
"""Posts that are not cards: profiles only rename their author; answers to a proposal, its
amendments and withdrawal show on the proposal's screen (``p``)."""

_SCALE_LABELS = {scale.key: scale.high for scale in COMPASS_SCALES}

Styler = Callable[[str], StyleType]
"""Maps a role (``author``, ``meta``, ``ask``, ``reply``, ``muted``) to a Rich style."""


@dataclass(slots=True)
class Card:
    """A post of the timeline with what was said in answer to it."""

    post: PostEntry
    replies: list[PostEntry] = field(default_factory=list)
    """Replies and follow-ups, oldest first."""
    reactions: list[PostEntry] = field(default_factory=list)
    fixed: int = 0
    """Lines that do not depend on the width (set by :meth:`measure`)."""
    size: int = 0
    """An upper bound of the length of :meth:`text` (set by :meth:`measure`)."""

    def measure(self) -> None:
        """Compute :attr:`fixed` and :attr:`size` once the answers are attached."""
        replies = len(self.replies)
        self.fixed = (1 + self.extra_lines() + min(replies, MAX_REPLIES)
                      + (1 if replies > MAX_REPLIES else 0) + (1 if self.reactions else 0) + 1)
        text = self.post.fields.get("text") if self.post.kind in ("checkin", "reply") else None
        # A check-in's text is the card's text but for folded spaces: its length is a bound
        # that costs nothing. Other kinds are rare; build their text.
        self.size = len(text) if isinstance(text, str) else len(self.text())

    def text(self) -> str:
        """The post's main text on one line (a check-in's arrival, an ask's title, ...)."""
        fields = self.post.fields
        kind = self.post.kind
        if kind in ("ask", "offer", "proposal"):
            body = one_line(str(fields.get("text", "")))
            title = one_line(str(fields.get("title", "")))
            return f"{title} — {body}" if body else title
        if kind == "gathering":
            return one_line(str(fields.get("title", "")))
        note = one_line(str(fields.get("note", "")))
        if kind == "crew_card":
            state = "open to new crewmates" if fields.get("open") else "closed"
            return f"{fields.get('name', '')} is {state}{': ' + note if note else ''}"
        if kind == "looking_for_crew":
            state = "looking for a crew" if fields.get("looking") else "no longer looking"
            return f"{state}{': ' + note if note else ''}"
        return one_line(str(fields.get("text", "")))

    def extra_lines(self) -> int:
        """Lines below the text: the compass and the ask of a check-in, where of a gathering."""
        fields = self.post.fields
        if self.post.kind == "checkin":
            return int(bool(fields.get("compass"))) + int(bool(fields.get("ask")))
        return int(self.post.kind == "gathering")


def build_cards(log: Iterable[PostEntry]) -> list[Card]:
    """The cards of a log (oldest first): answers attach to the post they answer.

    Two passes, because an answer may sort before the post it answers (the same millisecond,
    or an author whose clock runs behind). An answer to a post that is not in the log (not
    readable, not arrived yet, or itself an answer) is a card of its own, so nothing said is
    hidden.
    """
    cards: dict[bytes, Card] = {}
    answers = []
    for entry in log:
        if entry.kind in ANSWER_KINDS:
            answers.append(entry)
        elif entry.kind not in HIDDEN_KINDS:
            cards[entry.id] = Card(entry)
    orphans = False
    for entry in answers:
        target = entry.fields.get("to")
        parent = cards.get(target) if isinstance(target, bytes) else None
        if parent is None:
            cards[entry.id] = Card(entry)
            orphans = True
        elif entry.kind == "reaction":
            parent.reactions.append(entry)
        else:
            parent.replies.append(entry)
    found = list(cards.values())
    for card in found:
        card.measure()
    # The log is in (ts, id) order, and so are the cards unless an orphan was added last.
    return sorted(found, key=lambda card: (card.post.ts, card.post.id)) if orphans else found


def extend_cards(cards: list[Card], old_log: Sequence[PostEntry],
                 log: Sequence[PostEntry]) -> list[Card] | None:
    """``build_cards(log)`` from ``cards = build_cards(old_log)``, when ``log`` is ``old_log``
    (the same entries, by identity) with entries after it: what arrives while a space is open.

    Answers attach to their cards (which are changed in place and measured again), other
    posts become new cards at the end. Returns None when the cards must be built anew: the
    log changed before its end (a rename rebuilds every entry; a post with an older time
    sorts in), or a new post is what an orphan answer was waiting for.
    """
    known = len(old_log)
    if len(log) < known or any(a is not b for a, b in zip(old_log, log, strict=False)):
        return None
    tail = log[known:]
    fresh: dict[bytes, Card] = {}
    answers = []
    for entry in tail:
        if entry.kind in ANSWER_KINDS:
            answers.append(entry)
        elif entry.kind not in HIDDEN_KINDS:
            fresh[entry.id] = Card(entry)
    if not answers and not fresh:
        return cards
    if fresh:
        waiting = {card.post.fields.get("to") for card in cards
                   if card.post.kind in ANSWER_KINDS}
        if not waiting.isdisjoint(fresh):
            return None
    by_id = {card.post.id: card for card in cards} if answers else {}
    touched: dict[bytes, Card] = {}
    for entry in answers:
        target = entry.fields.get("to")
        parent = (fresh.get(target) or by_id.get(target)) if isinstance(target, bytes) else None
        if parent is None:
            fresh[entry.id] = Card(entry)
            continue
        (parent.reactions if entry.kind == "reaction" else parent.replies).append(entry)
        touched[parent.post.id] = parent
    for card in (*touched.values(), *fresh.values()):
        card.measure()
    return cards + sorted(fresh.values(), key=lambda card: (card.post.ts, card.post.id))


def text_lines(size: int, width: int) -> int:
    """How many lines :func:`card_lines` gives a text of ``size`` characters at ``width``."""
    return 0 if size == 0 else 1 if size <= width else TEXT_LINES


def card_height(card: Card, width: int) -> int:
    """The number of lines of a card at ``width`` (a header, the body, answers, a gap)."""
    return card.fixed + text_lines(card.size, width - 2)


def card_starts(cards: list[Card], width: int) -> list[int]:
    """The line where each card starts at ``width``, and after the last one the total."""
    limit = width - 2
    # The same sum as card_height, inlined: this runs over every card on each resize.
    return [0, *accumulate(card.fixed + (card.size > 0) + (card.size > limit)
                           for card in cards)]


_KIND_LABELS = {"checkin": "checked in", "ask": "asks", "offer": "offers",
                "gathering": "calls a gathering", "crew_card": "crew card",
                "looking_for_crew": "crew search", "reply": "replied", "followup": "followed up",
                "reaction": "reacted", "proposal": "proposes (p to answer)"}


def card_lines(card: Card, width: int, *, style: Styler, tz: tzinfo | None,
               receipt: str) -> list[Text]:
    """The lines of a card (exactly :func:`card_height` of them), each at most ``width`` wide."""
    post, fields = card.post, card.post.fields
    header = Text(no_wrap=True, overflow="ellipsis")
    header.append(post.author_name, style("author"))
    header.append(f"  {_KIND_LABELS.get(post.kind, post.kind)}  ", style("meta"))
    header.append(when(post.ts, tz), style("meta"))
    if post.kind == "checkin":
        header.append("  energy ", style("meta"))
        header.append(energy_text(int(fields.get("energy", 0))), style("energy"))
    header.append(f"  {receipt}", style("muted"))
    lines = [header]
    text = card.text()
    indent = "  "
    count = text_lines(card.size, width - 2)
    wrapped = textwrap.wrap(text, max(8, width - 2), max_lines=count, placeholder=" …") \
        if count else []
    wrapped += [""] * (count - len(wrapped))
    lines += [Text(indent + part, style("body"), no_wrap=True, overflow="ellipsis")
              for part in wrapped]
    if post.kind == "checkin":
        compass = fields.get("compass") or {}
        if compass:
            scores = " · ".join(f"{_SCALE_LABELS.get(k, k)} {v}" for k, v in compass.items())
            lines.append(Text(f"{indent}compass: {scores}", style("muted"), no_wrap=True,
                              overflow="ellipsis"))
        if fields.get("ask"):
            lines.append(Text(f"{indent}ask: {one_line(str(fields['ask']))}", style("ask"),
                              no_wrap=True, overflow="ellipsis"))
    elif post.kind == "gathering":
        place = one_line(str(fields.get("where", ""))) or "place to be announced"
        lines.append(Text(f"{indent}{day(int(fields.get('when_ms', 0)), tz)} at "
                          f"{when(int(fields.get('when_ms', 0)), tz)[-5:]} · {place}",
                          style("ask"), no_wrap=True, overflow="ellipsis"))
    for reply in card.replies[-MAX_REPLIES:]:
        mark = "follow-up" if reply.kind == "followup" else ""
        line = Text(f"{indent}↳ ", style("muted"), no_wrap=True, overflow="ellipsis")
        line.append(reply.author_name, style("author"))
        line.append(f"{' ' + mark if mark else ''}: {one_line(str(reply.fields.get('text')))}",
                    style("reply"))
        lines.append(line)
    if len(card.replies) > MAX_REPLIES:
        hidden = len(card.replies) - MAX_REPLIES
        lines.append(Text(f"{indent}↳ {hidden} earlier {'reply' if hidden == 1 else 'replies'}"
                          " (enter shows all)", style("muted"), no_wrap=True))
    if card.reactions:
        counts = Counter(str(r.fields.get("text")) for r in card.reactions)
        shown = " · ".join(f"{text} ×{n}" if n > 1 else text for text, n in counts.items())
        lines.append(Text(f"{indent}{shown}", style("reaction"), no_wrap=True,
                          overflow="ellipsis"))
    lines.append(Text(""))
    return lines
