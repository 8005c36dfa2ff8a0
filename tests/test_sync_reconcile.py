"""Sync version 2: frontiers reconciled bucket by bucket (sans-IO, in memory).

Two reconcilers learn each other's frontier exactly, for any two frontiers; the bytes follow
the difference and the messages the depth of the trie; a lying or broken peer gets a
RemoteProtocolError and nothing else; a session whose reconciliation goes wrong falls back to
whole frontiers and still converges. (tests/test_sync_properties.py checks that version 2 ends
exactly as version 1 does.)
"""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew.errors import LocalProtocolError, RemoteProtocolError
from meshcrew.records import Head, Record
from meshcrew.sync import RecordsReceived, SyncSession
from meshcrew.sync import reconcile as reconcile_module
from meshcrew.sync.reconcile import FINGERPRINT_BYTES, LEAF_ENTRIES, MAX_DEPTH, Reconciler
from meshcrew.sync.wire import (
    Hello,
    Offer,
    ReconcileMsg,
    encode_frontier,
    encode_message,
    frontier_digest,
    space_token,
    varint,
)
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

KEY_A = bytes(signing_key(2000).verify_key)
KEY_B = bytes(signing_key(2001).verify_key)
S1 = space_id(1)


def entry(author: bytes, seq: int, head: bytes) -> bytes:
    return author + seq.to_bytes(8, "big") + head


def reconcile(blob_a: bytes, blob_b: bytes) -> list[int]:
    """Run A (initiator) and B to the end; check each learned the other; message sizes."""
    a, b = Reconciler(blob_a, initiator=True), Reconciler(blob_b, initiator=False)
    message: bytes | None = a.start()
    sizes = []
    speaker, listener = b, a
    while message is not None:
        sizes.append(len(message))
        message = speaker.receive(message)
        speaker, listener = listener, speaker
        assert len(sizes) < 200, "the exchange did not end"
    assert a.finished()
    assert b.finished()
    assert a.peer_blob() == blob_b
    assert b.peer_blob() == blob_a
    return sizes


# Authors drawn from a few shared prefixes, so the trie goes deep where keys crowd together.
PREFIXES = [b"", b"\x00", b"\x00\x00\x00", b"\xab\xcd", bytes(31)]
authors = st.builds(lambda prefix, tail: (prefix + tail)[:32],
                    st.sampled_from(PREFIXES), st.binary(min_size=32, max_size=32))
heads = st.tuples(st.integers(1, 2**53 - 1), st.binary(min_size=32, max_size=32))


@st.composite
def frontier_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two frontiers: a shared part, and authors only one side has or whose heads differ."""
    shared = draw(st.dictionaries(authors, heads, max_size=120))
    a, b = dict(shared), dict(shared)
    for author in draw(st.lists(st.sampled_from(sorted(shared)), max_size=10)
                       if shared else st.just([])):
        change = draw(st.sampled_from(["drop_a", "drop_b", "differ"]))
        if change == "drop_a":
            a.pop(author, None)
        elif change == "drop_b":
            b.pop(author, None)
        else:
            b[author] = draw(heads)
    a.update(draw(st.dictionaries(authors, heads, max_size=5)))
    b.update(draw(st.dictionaries(authors, heads, max_size=5)))

    def blob(side: dict[bytes, tuple[int, bytes]]) -> bytes:
        return encode_frontier({k: Head(seq, head) for k, (seq, head) in side.items()})

    return blob(a), blob(b)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frontier_pairs(), st.booleans())
def test_each_side_learns_the_others_frontier_exactly(pair: tuple[bytes, bytes],
                                                      swap: bool) -> None:
    blob_a, blob_b = pair
    if blob_a == blob_b:
        return  # in sync: the session never reconciles (equal hello digests)
    sizes = reconcile(*((blob_b, blob_a) if swap else (blob_a, blob_b)))
    # Each pair of messages goes one nibble deeper, and keys share at most 31 bytes here.
    assert len(sizes) <= MAX_DEPTH + 3


def congregation(members: int) -> dict[bytes, Head]:
    return {hashlib.sha256(b"member %d" % n).digest(): Head(1 + n % 7,
                                                             hashlib.sha256(b"h%d" % n).digest())
            for n in range(members)}


@pytest.mark.parametrize("members", [50, 500, 5000])
@pytest.mark.parametrize("differ", [1, 3, 5])
def test_bytes_follow_the_difference_and_messages_the_depth(members: int, differ: int) -> None:
    a = congregation(members)
    b = dict(a)
    for author in sorted(a)[::max(1, members // differ)][:differ]:
        b[author] = Head(b[author].seq + 1, hashlib.sha256(author).digest())
    sizes = reconcile(encode_frontier(a), encode_frontier(b))
    # Per differing author: a split's fingerprints per level, its entries and the answer.
    levels = math.ceil(math.log(members / LEAF_ENTRIES, 16))
    per_author = levels * (2 + 16 * FINGERPRINT_BYTES) + (LEAF_ENTRIES + 1) * 72 + 4
    assert sum(sizes) <= 70 + differ * per_author
    assert sum(sizes) < 72 * members / 2  # below half of one whole frontier (v1 sends two)
    assert len(sizes) <= 2 * levels + 3


def test_one_side_empty() -> None:
    full = encode_frontier(congregation(40))
    for blob_a, blob_b in ((b"", full), (full, b"")):
        reconcile(blob_a, blob_b)


# --- whole sessions ----------------------------------------------------------------------------


def run(a: SyncSession, b: SyncSession, ra: MemoryReplica, rb: MemoryReplica) -> int:
    """Shuttle until both are silent; return the number of flights (one-way trips)."""
    flights = 0
    while True:
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return flights
        flights += 1
        for data, receiver, target in ((out_a, b, rb), (out_b, a, ra)):
            for event in receiver.receive_data(data):
                if isinstance(event, RecordsReceived):
                    target.append(event.raws)


def big_congregation(members: int) -> list[Record]:
    return [r for n in range(members) for r in make_chain(signing_key(5000 + n), S1, 2)]


CONGREGATION = big_congregation(500)


@pytest.mark.parametrize("missing", [1, 3, 5])
def test_500_members_a_few_records_apart_cost_under_2_kb_plus_the_records(missing: int) -> None:
    """Issue 15's target: <= 2 kB plus the missing records, O(log n) round trips."""
    lacking = [CONGREGATION[2 * n * 97 % 1000 + 1] for n in range(missing)]  # some heads
    ra = MemoryReplica(CONGREGATION)
    rb = MemoryReplica(r for r in CONGREGATION if r not in lacking)
    a = SyncSession(KEY_A, KEY_B, [S1], ra)
    b = SyncSession(KEY_B, KEY_A, [S1], rb)
    flights = run(a, b, ra, rb)
    assert rb.ids() == ra.ids()
    total = a.stats.bytes_sent + b.stats.bytes_sent
    records = sum(len(r.raw) + 3 for r in lacking)  # each bin's header
    assert total - records <= 2048, total - records
    assert flights <= 2 * math.ceil(math.log(500, 16)) + 4
    assert a.stats.frontiers_sent == b.stats.frontiers_sent == 0


def test_in_sync_stays_one_hello_each_way() -> None:
    ra, rb = MemoryReplica(CONGREGATION), MemoryReplica(CONGREGATION)
    a = SyncSession(KEY_A, KEY_B, [S1], ra)
    b = SyncSession(KEY_B, KEY_A, [S1], rb)
    assert run(a, b, ra, rb) == 1
    assert a.stats.bytes_sent == b.stats.bytes_sent == 38


def test_a_fingerprint_collision_falls_back_to_whole_frontiers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With every fingerprint alike, buckets look equal when they are not: the result then
    disagrees with the hello digest, and both sides send their whole frontiers instead."""
    monkeypatch.setattr(reconcile_module, "fingerprint", lambda entries: b"same")
    ra = MemoryReplica(CONGREGATION[:200])
    rb = MemoryReplica(CONGREGATION[100:300])
    a = SyncSession(KEY_A, KEY_B, [S1], ra)
    b = SyncSession(KEY_B, KEY_A, [S1], rb)
    run(a, b, ra, rb)
    assert a.complete
    assert b.complete
    assert ra.ids() == rb.ids() == {r.id for r in CONGREGATION[:300]}
    assert a.stats.frontiers_sent == b.stats.frontiers_sent == 1


# --- a lying or broken peer --------------------------------------------------------------------

TOKEN = space_token(S1, KEY_A, KEY_B)
INITIATOR, RESPONDER = sorted([KEY_A, KEY_B])


def responder(records: int = 40) -> SyncSession:
    """The higher key's session, after hellos crossed with S1 out of sync (it waits for the
    initiator's first reconciliation)."""
    session = SyncSession(RESPONDER, INITIATOR, [S1],
                          MemoryReplica(CONGREGATION[: 2 * records : 2]))
    session.data_to_send()
    session.receive_data(encode_message(Hello(2, (Offer(TOKEN, bytes(16)),))))
    return session


def reconcile_frame(payload: bytes) -> bytes:
    return encode_message(ReconcileMsg(TOKEN, payload))


ENTRY = entry(b"\x10" * 32, 1, bytes(32))


@pytest.mark.parametrize(("payload", "says"), [
    (b"", "cut short"),
    (b"\x00", "equal what its digest says differs"),
    (b"\x03", "unknown code"),
    (b"\x05", "stray code bits"),
    (b"\x02", "cut short"),
    (b"\x02\x00\x00", "holds nothing"),
    (b"\x02\x00\x01", "cut short"),
    (b"\x02\x00\x01" + bytes(FINGERPRINT_BYTES) + b"x", "left over"),
    (b"\x01" + varint(1), "cut short"),
    (b"\x01" + varint(2) + ENTRY + ENTRY, "out of place"),
    (b"\x01" + varint(1) + entry(b"\x10" * 32, 0, bytes(32)), "seq out of range"),
    (b"\x01\x80", "ends inside a number"),
    (b"\x01\x80\x00", "minimally"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_broken_first_reconciliation_is_the_peers_fault(payload: bytes, says: str) -> None:
    session = responder()
    with pytest.raises(RemoteProtocolError, match=says):
        session.receive_data(reconcile_frame(payload))
    with pytest.raises(LocalProtocolError):
        session.data_to_send()


def test_a_split_past_the_last_nibble_is_refused() -> None:
    deep = Reconciler(b"", initiator=False)
    deep._started = True  # as if it had already asked about the deepest bucket
    deep._open = [reconcile_module._Open(reconcile_module.Bucket(MAX_DEPTH, 0))]
    with pytest.raises(RemoteProtocolError, match="cannot be split"):
        deep.receive(b"\x02\x00\x01" + bytes(FINGERPRINT_BYTES))


def test_a_leaf_answer_naming_two_heads_of_one_author_is_refused() -> None:
    mine = encode_frontier({b"\x10" * 32: Head(1, bytes(32))})
    a = Reconciler(mine, initiator=True)
    a.start()  # one entry: described by its entries
    with pytest.raises(RemoteProtocolError, match="two heads"):
        a.receive(b"\x01" + varint(1) + entry(b"\x10" * 32, 2, bytes(32)))


def test_reconciliation_after_it_ended_or_in_version_1_is_refused() -> None:
    session = SyncSession(RESPONDER, INITIATOR, [S1], MemoryReplica(), version=1)
    session.data_to_send()
    session.receive_data(encode_message(Hello(1, (Offer(TOKEN, bytes(16)),))))
    with pytest.raises(RemoteProtocolError, match="out of turn"):
        session.receive_data(reconcile_frame(b"\x01\x00"))
    a = Reconciler(b"", initiator=False)
    assert a.receive(b"\x01\x00") is not None  # the initiator holds nothing: it sent that
    with pytest.raises(RemoteProtocolError, match="after it was complete"):
        a.receive(b"")


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_junk_reconciliation_is_only_ever_a_remote_protocol_error(junk: bytes,
                                                                   first: bool) -> None:
    session = responder()
    if not first:
        # Get past the first step with a real message from a real initiator.
        initiator = Reconciler(encode_frontier(congregation(30)), initiator=True)
        session.receive_data(reconcile_frame(initiator.start()))
        session.data_to_send()
    try:
        session.receive_data(reconcile_frame(junk))
        session.data_to_send()
    except RemoteProtocolError:
        pass


def test_the_digest_the_fallback_checks_is_the_hellos() -> None:
    blob = encode_frontier(congregation(3))
    assert frontier_digest(blob) == hashlib.blake2b(blob, digest_size=16,
                                                    person=b"meshcrew.sync.fd").digest()
