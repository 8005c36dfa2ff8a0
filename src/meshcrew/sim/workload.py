"""What simulated members write: real posts of realistic size, drawn from a seeded stream.

Check-ins carry a few sentences, an energy level, part of the compass and now and then an ask;
reactions say "heard"; the congregation gets profiles, asks, offers, gatherings and replies.
"""

from __future__ import annotations

import random

from meshcrew.sim.schedule import Intent
from meshcrew.spaces import (
    COMPASS_SCALES,
    Ask,
    CheckIn,
    Gathering,
    Offer,
    Post,
    Profile,
    Reaction,
    Reply,
)

_TEXT = ("arriving tired but glad the week held more than I hoped slow morning garden "
          "kids sick again work deadline friday grateful for the crew felt heard last time "
          "stuck on the budget learning to ask for help walked by the river energy low "
          "high hopes for the gathering need a hand moving boxes proud of small steps "
          "sleeping better quiet week thinking about what belonging means to me")
_WORDS = tuple(_TEXT.split())


def words(rng: random.Random, low: int, high: int) -> str:
    """Between ``low`` and ``high`` characters of words."""
    target = rng.randint(low, high)
    text = ""
    while len(text) < target:
        text += (" " if text else "") + rng.choice(_WORDS)
    return text[:high].strip()


def make_post(intent: Intent, member: int, rng: random.Random, *, to: bytes | None = None,
              now_ms: int = 0) -> Post:
    """A post of the kind ``intent`` by ``member`` (``to``: what a reaction or reply answers)."""
    match intent:
        case Intent.CHECKIN:
            scales = rng.sample(COMPASS_SCALES, rng.randint(0, 4))
            return CheckIn(words(rng, 40, 400), rng.randint(1, 5),
                           {s.key: rng.randint(1, 5) for s in scales},
                           words(rng, 20, 120) if rng.random() < 0.2 else None)
        case Intent.REACTION:
            assert to is not None
            return Reaction(to, rng.choice(("heard", "🙏", "💛", "with you")))
        case Intent.PROFILE:
            return Profile(f"Member {member}", words(rng, 0, 200))
        case Intent.ASK:
            return Ask(words(rng, 10, 60), words(rng, 0, 400))
        case Intent.OFFER:
            return Offer(words(rng, 10, 60), words(rng, 0, 300))
        case Intent.GATHERING:
            return Gathering(words(rng, 10, 60), now_ms + rng.randint(1, 14) * 86_400_000,
                             "https://meet.example/" + words(rng, 5, 20).replace(" ", "-"))
        case Intent.REPLY:
            assert to is not None
            return Reply(to, words(rng, 10, 300))
    raise ValueError(f"no post for {intent}")  # pragma: no cover - every Intent is matched
