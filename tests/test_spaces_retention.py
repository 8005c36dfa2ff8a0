"""The retention rule (``meshcrew.spaces.retention``) as a property: which posts have expired,
which wait for their author's next record and when the next one expires are a function of the
set of records, whatever order they arrived in and however often, and the same for every
member."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.records import Record
from meshcrew.spaces import CheckIn, Period, Reply, Rhythm
from meshcrew.spaces.retention import Expiry, expiry
from spaces_world import DAY, World, person, pk

PEOPLE = tuple(person(n) for n in ("ada", "bo", "cy"))
move = st.tuples(st.sampled_from(["checkin", "checkin", "reply", "leave_taking"]),
                 st.integers(0, 2), st.integers(0, 4))


def heads(records: list[Record]) -> set[bytes]:
    """Each author's newest record."""
    newest: dict[bytes, Record] = {}
    for record in records:
        if record.author not in newest or record.seq > newest[record.author].seq:
            newest[record.author] = record
    return {r.id for r in newest.values()}


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=st.lists(move, max_size=12), now_days=st.integers(0, 6),
       seed=st.integers(0, 2**32 - 1))
def test_any_order_and_duplicates_expire_the_same_posts(
        moves: list[tuple[str, int, int]], now_days: int, seed: int) -> None:
    w = World(5)
    space = w.found(PEOPLE[0], rhythm=Rhythm(Period.DAILY))
    for joiner in PEOPLE[1:]:
        w.admit(PEOPLE[0], joiner, space)
    start = w.now
    left: set[int] = set()
    checkins: list[bytes] = []
    for n, (name, who, day) in enumerate(sorted(moves, key=lambda m: m[2])):
        if who in left:
            continue
        # After the rotation w.post may sign first (at the next tick): none goes back in time.
        key, ts = PEOPLE[who], max(w.now + 1000, start + day * DAY) + n
        if name == "leave_taking":
            w.sign(key, space, spaces.leave_space(w.state(space), pk(key), expire_posts=True),
                   ts=ts)
            left.add(who)
        elif name == "reply" and checkins:
            w.post(key, space, Reply(checkins[day % len(checkins)], "heard you"), ts=ts)
        else:
            checkins.append(w.post(key, space, CheckIn(f"day {day}", 3), ts=ts).id)
        w.now = ts
    records = w.of(space)
    shuffler = random.Random(seed)
    shuffled = records + shuffler.sample(records, k=len(records) // 3)
    shuffler.shuffle(shuffled)
    now = start + now_days * DAY
    members: Expiry | None = None
    for who, reader in enumerate(PEOPLE):
        state = w.state(space)
        meta = spaces.open_meta(state, spaces.unlock(state, reader))
        assert meta is not None
        meta = replace(meta, keep_checkins=1, keep_posts=2)
        in_order = expiry(w.opened(reader, space, records), meta, now, heads(records))
        assert expiry(w.opened(reader, space, shuffled), meta, now, heads(records)) == in_order
        assert not in_order.due & heads(records)  # a chain's newest record is never deleted
        if who not in left:  # who left reads nothing posted after: the members agree
            assert members is None or in_order == members
            members = in_order


def test_a_known_history_expires_the_posts_the_rules_name() -> None:
    """Beside the property, which also holds if nothing ever expires: a daily crew keeping
    check-ins one day and other posts two, read two days on. Ada's first check-in is due, and
    Bo's reply to it with it (rule 2); Ada's second check-in and Cy's only one have expired but
    are their authors' newest records (rule 4); Bo's check-in of today expires tomorrow."""
    w = World(5)
    ada, bo, cy = PEOPLE
    space = w.found(ada, rhythm=Rhythm(Period.DAILY))
    for joiner in (bo, cy):
        w.admit(ada, joiner, space)
    start = w.now
    first = w.post(ada, space, CheckIn("day 0", 3), ts=start + 1).id
    only = w.post(cy, space, CheckIn("day 0", 3), ts=start + 2).id
    reply = w.post(bo, space, Reply(first, "heard you"), ts=start + DAY + 1).id
    second = w.post(ada, space, CheckIn("day 1", 3), ts=start + DAY + 2).id
    w.post(bo, space, CheckIn("day 2", 3), ts=start + 2 * DAY + 1)
    records = w.of(space)
    shuffled = random.Random(7).sample(records, k=len(records))
    expected = Expiry(frozenset({first, reply}), frozenset({second, only}),
                      Rhythm(Period.DAILY).cycle_at(start + 3 * DAY).start_ms)
    for reader in PEOPLE:
        state = w.state(space)
        meta = spaces.open_meta(state, spaces.unlock(state, reader))
        assert meta is not None
        meta = replace(meta, keep_checkins=1, keep_posts=2)
        for delivered in (records, shuffled):
            opened = w.opened(reader, space, delivered)
            assert expiry(opened, meta, start + 2 * DAY, heads(records)) == expected
