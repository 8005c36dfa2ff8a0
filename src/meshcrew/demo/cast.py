"""The demo crew's people and what they say: names, arrivals, asks, replies.

Plain data, so the seeded history and the live check-ins read like a real crew without any
randomness living here: callers pick lines with their own seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from meshcrew.spaces import COMPASS_SCALES

MEMBERS = ("Amara", "Bo", "Chen")
"""The demo members; the first founds the crew and makes every invite."""
SPARE_NAMES = ("Dara", "Femi", "Ines")
"""Names a demo member takes instead when yours is theirs (see :func:`members_beside`)."""


def members_beside(yours: str) -> tuple[str, ...]:
    """The demo members' names, none of them ``yours``: with your own name (``--name Bo``, or
    a ``--home`` whose identity is called Bo) the crew listed "Bo, Bo" and "Bo said 'heard
    you'" could have been either."""
    taken = yours.casefold()
    spares = (name for name in SPARE_NAMES if name.casefold() != taken)
    return tuple(next(spares) if name.casefold() == taken else name for name in MEMBERS)

CREW_NAME = "Riverside crew"
CREW_PURPOSE = ("Three neighbours and you: a weekly check-in on work and life, and a hand "
                "when someone asks for one.")
HEARD = "heard you"
"""The reaction the TUI's ``h`` key sends (the demo members send the same)."""

ARRIVALS = (
    ("Arriving a bit scattered after a long week of grant writing, but glad to be here.", 3),
    ("Feeling grounded. The garden is finally planted and I slept well.", 4),
    ("Tired. The co-op meeting ran three hours over and we decided nothing.", 2),
    ("Light and curious: I started the pottery class I kept putting off.", 4),
    ("Anxious about the move next month, taking it one box at a time.", 2),
    ("Proud of the team: we shipped the booking tool for the food bank.", 5),
    ("Quiet week. Mostly reading, and long walks by the river.", 3),
    ("Stretched thin between two projects; I think I need to drop one.", 2),
    ("Energised after the neighbourhood assembly: forty people came!", 5),
    ("Low on sleep, high on gratitude. My sister had her baby on Tuesday.", 4),
    ("Wobbly. A hard conversation with a client is still on my mind.", 1),
    ("Steady. Nothing dramatic, and that feels good for once.", 3),
)
"""How the demo members arrive in the seeded weeks, each with a fitting energy (1-5)."""

LIVE_ARRIVALS = (
    ("Just back from a walk; checking in early this week.", 4),
    ("Short one: tired but hopeful, the funding came through.", 3),
    ("Making soup for the co-op dinner tonight, feeling warm.", 4),
    ("Had a good talk with my buddy; the week feels lighter now.", 4),
    ("Head down on the newsletter, energy dipping by the afternoon.", 2),
    ("Sitting in the library, finally writing the thing I avoided.", 3),
    ("Rain all day, so I fixed the bike and called my mum.", 3),
    ("A bit flat today. Glad this crew is here.", 2),
)
"""What the demo members say when they check in while the demo runs."""

ASKS = (
    ("Could someone read my grant draft before Friday?",
     "I can read it on Thursday evening; send it over."),
    ("Anyone free to help carry boxes on the 14th?", "Count me in, I will bring the van."),
    ("Looking for a buddy to co-work with on Wednesday mornings.",
     "Yes please! The library at nine?"),
    ("Does anyone know a good mediator for a housing co-op?",
     "My friend Sol does exactly that; I will introduce you."),
)
"""Asks for support, each with the answer a crewmate gives."""

REPLIES_LOW = (
    "That sounds like a lot. Want to talk it through on a walk?",
    "Sending care. Shout if a meal would help this week.",
    "Same here, honestly. Let's compare notes on Friday.",
)
REPLIES_HIGH = (
    "So good to hear. Enjoy it!",
    "Love this. Tell us more when we meet.",
)
REPLIES_STEADY = (
    "Thanks for sharing, good to hear from you.",
    "Glad the week is kind to you.",
)


@dataclass(frozen=True, slots=True)
class CheckInLines:
    """One check-in's content: the arrival text, energy, compass scores and an optional ask."""

    text: str
    energy: int
    compass: dict[str, int]
    ask: str | None


class Lines:
    """Picks what the demo members say, with a seeded random generator, without repeating a
    line until every line has been used.

    Args:
        rng: the generator (seed it for a repeatable demo).
        arrivals: the (text, energy) lines to deal from.
        ask_chance: how often a check-in carries an ask.
    """

    def __init__(self, rng: random.Random, arrivals: tuple[tuple[str, int], ...], *,
                 ask_chance: float = 0.25) -> None:
        self.rng = rng
        self._arrivals = arrivals
        self._ask_chance = ask_chance
        self._deck: list[tuple[str, int]] = []
        self._asks: list[tuple[str, str]] = []

    def check_in(self) -> CheckInLines:
        """The next check-in: a text with its energy, up to three compass scores, maybe an
        ask."""
        if not self._deck:
            self._deck = self.rng.sample(self._arrivals, len(self._arrivals))
        text, energy = self._deck.pop()
        scales = self.rng.sample([scale.key for scale in COMPASS_SCALES], self.rng.randint(0, 3))
        ask = None
        if self.rng.random() < self._ask_chance:
            if not self._asks:
                self._asks = self.rng.sample(ASKS, len(ASKS))
            ask = self._asks.pop()[0]
        return CheckInLines(text, energy, {key: self.rng.randint(1, 5) for key in scales}, ask)

    def reply_to(self, energy: int, ask: str | None) -> str:
        """What a crewmate answers a check-in with this energy and ask."""
        answers = [answer for question, answer in ASKS if question == ask]
        if answers:
            return answers[0]
        mood = REPLIES_LOW if energy <= 2 else REPLIES_HIGH if energy >= 4 else REPLIES_STEADY
        return self.rng.choice(mood)
