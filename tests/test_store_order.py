"""Order independence: any delivery order of the same records gives the same replica state.

The state compared is the frontier of every space, the set of accepted ids, the forked authors
and the pending counts. Besides comparing two delivery orders, each replica is compared with a
reference model written independently of the store: a walk up each chain from seq 1 that stops at
the first missing record or fork (the rules in ``meshcrew.store.ingest``). Some records come as
their husks (expired posts: no signature, taken only when the record above names them), alone or
beside the record itself; forks are drawn away from them (see the ingest's rule 6 for why).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew.home import Home
from meshcrew.records import Head, Record, decode_husk, encode_husk
from meshcrew.store import Replica
from store_factory import NOW_MS, Chain, key, space

SPACES = [space(0), space(1)]
CHAIN_SLOTS = [(0, 0), (1, 0), (0, 1)]
"""(author key, space) of up to three chains: two authors share space 0, one also writes in 1."""


@dataclass(frozen=True)
class State:
    """What must not depend on delivery order."""

    frontiers: dict[bytes, dict[bytes, Head]]
    accepted: frozenset[bytes]
    forked: dict[bytes, frozenset[bytes]]
    pending: dict[bytes, int]


def model(records: list[Record]) -> State:
    """The state a set of records should give, computed without the store."""
    by_chain: dict[tuple[bytes, bytes], dict[int, list[Record]]] = defaultdict(
        lambda: defaultdict(list))
    merged: dict[bytes, Record] = {}
    for record in records:  # a husk and its record are one record: the signed one counts
        if record.id not in merged or merged[record.id].expired:
            merged[record.id] = record
    for record in merged.values():
        by_chain[(record.space_id, record.author)][record.seq].append(record)
    frontiers: dict[bytes, dict[bytes, Head]] = {s: {} for s in SPACES}
    forked: dict[bytes, set[bytes]] = {s: set() for s in SPACES}
    pending = dict.fromkeys(SPACES, 0)
    accepted: set[bytes] = set()
    for (space_id, author), at in by_chain.items():
        chain: list[Record] = []
        fork: int | None = None
        def vouched(husk: Record, at: dict[int, list[Record]] = at) -> bool:
            return any(r.prev == husk.id and (not r.expired or vouched(r))
                       for r in at.get(husk.seq + 1, []))

        while True:
            level = at.get(len(chain) + 1, [])
            signed = [r for r in level if not r.expired]
            if chain and any(r.prev != chain[-1].id for r in signed):
                fork = len(chain)  # a second record at the head's seq is proven
                break
            valid = [r for r in signed if not chain or r.ts >= chain[-1].ts]
            if len(valid) > 1:
                fork = len(chain) + 1
                break
            if not valid:  # a husk is taken only if it fits and the record above names it
                valid = [r for r in level if r.expired and chain and r.prev == chain[-1].id
                         and r.ts >= chain[-1].ts and vouched(r)]
            if not valid:
                break
            chain.append(valid[0])
        if fork is not None:
            chain = chain[: fork - 1]
            forked[space_id].add(author)
        else:
            pending[space_id] += sum(len(rs) for seq, rs in at.items() if seq > len(chain) + 1)
            pending[space_id] += sum(r.expired for r in at.get(len(chain) + 1, []))
        accepted.update(r.id for r in chain)
        if chain:
            frontiers[space_id][author] = Head(chain[-1].seq, chain[-1].id)
    return State(frontiers, frozenset(accepted), {s: frozenset(a) for s, a in forked.items()},
                 pending)


def replica_state(replica: Replica) -> State:
    """The same view, read from a replica."""
    accepted = {r.id for s in replica.spaces() for r in replica.space_records(s)}
    by_author = {r.id for s in SPACES for _, a in CHAIN_SLOTS
                 for r in replica.author_records(bytes(key(a).verify_key), s)}
    assert accepted == by_author
    assert replica.record_count() == len(accepted)
    return State({s: replica.frontier(s) for s in SPACES}, frozenset(accepted),
                 {s: frozenset(replica.forked_authors(s)) for s in SPACES},
                 {s: replica.pending_count(s) for s in SPACES})


EXTRAS = ("fork", "broken", "time_travel", "fork_child")


def husk_of(record: Record) -> Record:
    """The husk a replica keeps of a record whose post expired, as a peer would send it."""
    return decode_husk(encode_husk(record, b"stub"))


@st.composite
def record_sets(draw: st.DrawFn) -> list[Record]:
    """Chains with gaps, forks, broken links, early timestamps, husks (alone, or beside their
    record) and duplicates mixed in."""
    out: list[Record] = []
    for n, (author, space_n) in enumerate(CHAIN_SLOTS[: draw(st.integers(1, 3))]):
        chain = Chain(key(author), SPACES[space_n])
        length = draw(st.integers(0, 6))
        records = [chain.next(kind="sealed") for _ in range(length)]
        husked = draw(st.sets(st.integers(2, max(2, length)), max_size=length)) \
            if length >= 2 else set()
        for record in records:
            if record.seq not in husked:
                out.append(record)
                continue
            out.append(husk_of(record))
            if draw(st.booleans()):
                out.append(record)
        for i in range(draw(st.integers(0, 3))):
            extra = draw(st.sampled_from(EXTRAS))
            seq = draw(st.integers(1, length + 1))
            if seq in husked or seq - 1 in husked:
                continue  # a fork beside an expired post: outside what order independence keeps
            body = b"extra %d %d %s" % (n, i, extra.encode())
            if extra == "fork":
                variant = chain.at(seq, body=body)
            elif extra == "broken" and seq >= 2:
                variant = chain.at(seq, prev=hashlib.sha256(body).digest(), body=body)
            elif extra == "time_travel" and 2 <= seq <= length + 1:
                variant = chain.at(seq, ts=chain.records[seq - 2].ts - 1, body=body)
            else:  # a fork with a child that links to it
                variant = chain.at(seq, body=body)
                out.append(chain.at(seq + 1, prev=variant.id, ts=variant.ts + 1, body=body))
            out.append(variant)
    if out:
        out += draw(st.lists(st.sampled_from(out), max_size=3))  # duplicates
    return out


def ingest(records: list[Record], batch_sizes: list[int]) -> State:
    """Append ``records`` in that order to a fresh replica, in batches of the given sizes."""
    with (tempfile.TemporaryDirectory(prefix="meshcrew-order-") as tmp,
          Replica.open(Home(Path(tmp) / "home")) as replica):
        start, sizes = 0, iter(batch_sizes)
        while start < len(records):
            size = next(sizes, len(records))
            replica.append([r.raw for r in records[start : start + size]], now_ms=NOW_MS)
            start += size
        return replica_state(replica)


@settings(max_examples=examples(300, more=False), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), records=record_sets())
def test_every_delivery_order_gives_the_model_state(data: st.DataObject,
                                                   records: list[Record]) -> None:
    expected = model(records)
    for _ in range(2):
        order = data.draw(st.permutations(records))
        sizes = data.draw(st.lists(st.integers(1, 8), max_size=6))
        assert ingest(order, sizes) == expected


def test_the_model_agrees_with_hand_worked_cases() -> None:
    chain = Chain(key(0), SPACES[0])
    one, two, three = chain.extend(3)
    author = chain.author
    assert model([one, two, three]).frontiers[SPACES[0]] == {author: Head(3, three.id)}
    assert model([one, three]).pending[SPACES[0]] == 1
    fork = model([one, two, three, chain.at(2, body=b"x")])
    assert fork.accepted == {one.id}
    assert fork.forked[SPACES[0]] == {author}
    broken = model([one, two, chain.at(3, prev=b"\x01" * 32)])
    assert broken.accepted == {one.id}
    early = model([one, two, chain.at(3, ts=two.ts - 1)])
    assert early.accepted == {one.id, two.id}
    assert early.forked[SPACES[0]] == frozenset()
