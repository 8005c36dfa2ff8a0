"""Property tests: two replicas end with the union of the spaces both offer; junk never crashes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshcrew.errors import RemoteProtocolError
from meshcrew.sync import RecordsReceived, SyncSession
from meshcrew.sync.wire import Hello, Offer, encode_message, space_token
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

SPACES = [space_id(100), space_id(101)]
AUTHORS = range(4)
CHAIN = 12
TRUTH = {(s, n): make_chain(signing_key(200 + n), s, CHAIN) for s in SPACES for n in AUTHORS}
KEY_A = bytes(signing_key(300).verify_key)
KEY_B = bytes(signing_key(301).verify_key)

prefixes = st.fixed_dictionaries({key: st.integers(0, CHAIN) for key in TRUTH})
offers = st.sets(st.sampled_from(SPACES))


def replica(lengths: dict[tuple[bytes, int], int]) -> MemoryReplica:
    return MemoryReplica(r for key, n in lengths.items() for r in TRUTH[key][:n])


def shuttle(a: SyncSession, b: SyncSession, ra: MemoryReplica, rb: MemoryReplica,
            chunk: int) -> None:
    for _ in range(10_000):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return
        for data, receiver, target in ((out_a, b, rb), (out_b, a, ra)):
            for at in range(0, len(data), chunk):
                for event in receiver.receive_data(data[at : at + chunk]):
                    if isinstance(event, RecordsReceived):
                        target.append(event.raws)
    raise AssertionError("the exchange did not settle")


@settings(max_examples=150, deadline=None)
@given(prefixes, prefixes, offers, offers, st.sampled_from([1, 5, 64, 1 << 20]))
def test_both_sides_end_with_the_union_of_shared_spaces(
        have_a: dict[tuple[bytes, int], int], have_b: dict[tuple[bytes, int], int],
        offer_a: set[bytes], offer_b: set[bytes], chunk: int) -> None:
    ra, rb = replica(have_a), replica(have_b)
    before_a, before_b = ra.ids(), rb.ids()
    a = SyncSession(KEY_A, KEY_B, offer_a, ra)
    b = SyncSession(KEY_B, KEY_A, offer_b, rb)
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


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_junk_from_a_peer_is_only_ever_a_remote_protocol_error(junk: bytes,
                                                                after_hello: bool) -> None:
    b = SyncSession(KEY_B, KEY_A, SPACES, replica({key: 3 for key in TRUTH}))
    b.data_to_send()
    if after_hello:
        token = space_token(SPACES[0], KEY_A, KEY_B)
        b.receive_data(encode_message(Hello(1, (Offer(token, bytes(16)),))))
    try:
        b.receive_data(junk)
        b.data_to_send()
    except RemoteProtocolError:
        pass
