"""The timeline's cards: built from a log, and extended as entries arrive (the same cards)."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from meshcrew.service import PostEntry
from meshcrew.tui.cards import build_cards, extend_cards

SPACE = bytes(32)
KINDS = ("checkin", "checkin", "reply", "reaction", "followup", "profile", "ask")


def entries(plan: list[tuple[str, int, int]]) -> list[PostEntry]:
    """A log: each step a kind, a time step and which entry it answers (any index, so some
    answers come before what they answer, or answer nothing there)."""
    ids = [bytes([n % 256, n // 256]) + bytes(30) for n in range(len(plan))]
    log = []
    ts = 0
    for n, (kind, step, to) in enumerate(plan):
        ts += step
        fields: dict[str, object] = {"text": f"post {n}"}
        if kind in ("reply", "reaction", "followup"):
            fields["to"] = ids[to % len(ids)] if to % 5 else bytes(32)  # some answer nothing
        log.append(PostEntry(ids[n], SPACE, kind, bytes(32), "Ada", n + 1, ts, fields))
    return sorted(log, key=lambda e: (e.ts, e.id))


plans = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 60)),
                 max_size=60)


@settings(max_examples=300, deadline=None)
@given(plan=plans, cut=st.integers(0, 60))
def test_extending_gives_the_cards_of_the_longer_log(plan: list[tuple[str, int, int]],
                                                     cut: int) -> None:
    log = entries(plan)
    old = log[:cut]
    cards = build_cards(old)
    extended = extend_cards(cards, old, log)
    event("extended" if extended is not None else "rebuilt")
    if extended is not None:
        assert extended == build_cards(log)


def test_arrivals_extend_and_a_changed_log_is_rebuilt() -> None:
    log = entries([("checkin", 1, 0), ("checkin", 1, 0), ("reply", 1, 1), ("reaction", 1, 6),
                   ("checkin", 1, 0), ("reply", 1, 4)])
    old = log[:2]
    cards = build_cards(old)
    extended = extend_cards(cards, old, log)
    assert extended is not None
    assert extended == build_cards(log)
    assert [len(c.replies) for c in extended] == [0, 1, 1]
    assert [len(c.reactions) for c in extended] == [1, 0, 0]
    assert extend_cards(build_cards(log), log, list(log)) == build_cards(log)  # nothing new
    renamed = [PostEntry(e.id, e.space, e.kind, e.author, "Ada L.", e.seq, e.ts, e.fields)
               for e in log]
    assert extend_cards(build_cards(log), log, renamed) is None  # not the same entries
    orphan_first = entries([("reply", 1, 1), ("checkin", 1, 0)])
    assert extend_cards(build_cards(orphan_first[:1]), orphan_first[:1], orphan_first) is None
