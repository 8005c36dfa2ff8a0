"""Property tests: two replicas end with the union of the spaces both offer, whichever version
they speak, and version 2 (reconciled frontiers) ends exactly as version 1 (whole frontiers)
does, forks included; junk never crashes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew.errors import RemoteProtocolError
from meshcrew.sync import PeerFrontier, RecordsReceived, SyncEvent, SyncSession
from meshcrew.sync.wire import Hello, Offer, encode_message, space_token
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

SPACES = [space_id(100), space_id(101)]
AUTHORS = range(4)
CHAIN = 12
TRUTH = {(s, n): make_chain(signing_key(200 + n), s, CHAIN) for s in SPACES for n in AUTHORS}
KEY_A = bytes(signing_key(300).verify_key)
KEY_B = bytes(signing_key(301).verify_key)

FORKED = {(s, n): make_chain(signing_key(200 + n), s, CHAIN, start_ts=7) for s in SPACES
          for n in AUTHORS}
"""The same authors' other chains: the same seqs, other records (a fork from seq 1)."""

prefixes = st.fixed_dictionaries({key: st.integers(0, CHAIN) for key in TRUTH})
offers = st.sets(st.sampled_from(SPACES))
versions = st.sampled_from([1, 2])


def replica(lengths: dict[tuple[bytes, int], int],
            forked: frozenset[tuple[bytes, int]] = frozenset()) -> MemoryReplica:
    return MemoryReplica(r for key, n in lengths.items()
                         for r in (FORKED if key in forked else TRUTH)[key][:n])


def shuttle(a: SyncSession, b: SyncSession, ra: MemoryReplica, rb: MemoryReplica,
            chunk: int, *, b_first: bool = False) -> list[SyncEvent]:
    """Carry bytes both ways in ``chunk``-sized pieces until both are silent; A's events."""
    got_a: list[SyncEvent] = []
    for _ in range(10_000):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return got_a
        flights = [(out_a, b, rb, None), (out_b, a, ra, got_a)]
        for data, receiver, target, log in reversed(flights) if b_first else flights:
            for at in range(0, len(data), chunk):
                for event in receiver.receive_data(data[at : at + chunk]):
                    if log is not None:
                        log.append(event)
                    if isinstance(event, RecordsReceived):
                        target.append(event.raws)
    raise AssertionError("the exchange did not settle")


@settings(max_examples=examples(150), deadline=None)
@given(prefixes, prefixes, offers, offers, st.sampled_from([1, 5, 64, 1 << 20]), versions)
def test_both_sides_end_with_the_union_of_shared_spaces(
        have_a: dict[tuple[bytes, int], int], have_b: dict[tuple[bytes, int], int],
        offer_a: set[bytes], offer_b: set[bytes], chunk: int, version: int) -> None:
    ra, rb = replica(have_a), replica(have_b)
    before_a, before_b = ra.ids(), rb.ids()
    a = SyncSession(KEY_A, KEY_B, offer_a, ra, version=version)
    b = SyncSession(KEY_B, KEY_A, offer_b, rb, version=version)
    shuttle(a, b, ra, rb, chunk)
    assert a.complete
    assert b.complete
    for space in SPACES:
        if space in offer_a and space in offer_b:
            union = {r.id for key, n in have_a.items() if key[0] == space
                     for r in TRUTH[key][: max(n, have_b[key])]}
            assert ra.ids(space) == rb.ids(space) == union
        else:
            assert ra.ids(space) == replica(have_a).ids(space)  # untouched
            assert rb.ids(space) == replica(have_b).ids(space)
    assert not ra.pending
    assert not rb.pending
    assert ra.rejected == rb.rejected == 0
    # records only ever go where they are missing
    assert a.stats.records_sent == len(rb.ids() - before_b)
    assert b.stats.records_sent == len(ra.ids() - before_a)


@settings(max_examples=examples(300), deadline=None)
@given(prefixes, prefixes, st.sets(st.sampled_from(sorted(TRUTH))),
       st.sets(st.sampled_from(sorted(TRUTH))), offers, offers,
       st.sampled_from([1, 7, 1 << 20]), st.booleans(), st.booleans())
def test_version_2_ends_exactly_as_version_1(
        have_a: dict[tuple[bytes, int], int], have_b: dict[tuple[bytes, int], int],
        forked_a: set[tuple[bytes, int]], forked_b: set[tuple[bytes, int]],
        offer_a: set[bytes], offer_b: set[bytes], chunk: int, b_first: bool,
        swap: bool) -> None:
    """Any difference (gaps, forks, spaces one side lacks), any delivery order, either key the
    lower one: the same records on both sides, the same records sent, the same peer frontiers
    learned."""
    key_a, key_b = (KEY_B, KEY_A) if swap else (KEY_A, KEY_B)
    outcomes = []
    for version in (1, 2):
        ra, rb = replica(have_a, frozenset(forked_a)), replica(have_b, frozenset(forked_b))
        a = SyncSession(key_a, key_b, offer_a, ra, version=version)
        b = SyncSession(key_b, key_a, offer_b, rb, version=version)
        got_a = shuttle(a, b, ra, rb, chunk, b_first=b_first)
        assert a.complete
        assert b.complete
        learned = {e.space_id: dict(e.frontier) for e in got_a if isinstance(e, PeerFrontier)}
        if version == 2:  # reconciled, not rescued by the fallback to whole frontiers
            assert a.stats.frontiers_sent == b.stats.frontiers_sent == 0
        outcomes.append((ra.ids(), rb.ids(), {r.id for r in ra.forks}, {r.id for r in rb.forks},
                         a.stats.records_sent, b.stats.records_sent, learned,
                         a.stats.spaces_synced, b.stats.spaces_synced))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=300), st.booleans(), versions)
def test_junk_from_a_peer_is_only_ever_a_remote_protocol_error(junk: bytes, after_hello: bool,
                                                                version: int) -> None:
    b = SyncSession(KEY_B, KEY_A, SPACES, replica({key: 3 for key in TRUTH}), version=version)
    b.data_to_send()
    if after_hello:
        token = space_token(SPACES[0], KEY_A, KEY_B)
        b.receive_data(encode_message(Hello(version, (Offer(token, bytes(16)),))))
    try:
        b.receive_data(junk)
        b.data_to_send()
    except RemoteProtocolError:
        pass
