"""``sync.wire.record_space``: the space a record claims, read before it is verified, so that a
sync session refuses records smuggled into a space the peers did not agree to sync."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew.records import MAX_KIND_CHARS, NEW_SPACE, record_id, sign_record
from meshcrew.sync.wire import record_space
from test_records import KEY, PREV, SPACE, TS, canonical_parts, fields, forge, forge_parts


def pack(value: object) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


def test_a_record_claims_its_space_and_a_genesis_its_own_id() -> None:
    rec = sign_record(KEY, kind="checkin", space=SPACE, seq=2, prev=PREV, ts=TS, body=b"hi")
    assert record_space(rec.raw) == SPACE
    genesis = sign_record(KEY, kind="genesis", space=NEW_SPACE, seq=1, prev=None, ts=TS,
                          body=b"")
    assert record_space(genesis.raw) == genesis.id == record_id(genesis.raw)


def test_longest_kinds_and_other_encodings_are_read_the_same() -> None:
    """A 32-character kind (str8) or a non-canonical field is read the slow way, alike."""
    long = "k" * MAX_KIND_CHARS
    assert record_space(sign_record(KEY, kind=long, space=SPACE, seq=2, prev=PREV, ts=TS,
                                    body=b"").raw) == SPACE
    genesis = forge(fields(kind=long))
    assert record_space(genesis) == record_id(genesis)
    for parts in (
        [b"\xcd\x00\x01", *canonical_parts(space=SPACE, seq=2, prev=PREV)[1:]],  # uint16 version
        [pack(1), b"\xd9\x07checkin", *canonical_parts(space=SPACE, seq=2, prev=PREV)[2:]],
        [*canonical_parts(space=SPACE, seq=2, prev=PREV)[:2], b"\xc5\x00\x20" + SPACE,
         *canonical_parts(space=SPACE, seq=2, prev=PREV)[3:]],  # the space as a bin 16
    ):
        assert record_space(forge_parts(parts)) == SPACE
    genesis_v16 = forge_parts([b"\xcd\x00\x01", *canonical_parts()[1:]])
    assert record_space(genesis_v16) == record_id(genesis_v16)


def test_what_claims_no_readable_space_is_none() -> None:
    assert record_space(b"") is None
    assert record_space(b"\xc1" * 50) is None  # not msgpack
    assert record_space(pack({"space": SPACE})) is None  # not an array
    assert record_space(pack([1, "checkin", SPACE])) is None  # too few fields
    assert record_space(pack([*fields(space=SPACE), bytes(64), b""])) is None  # too many
    for space in (SPACE[:31], SPACE + b"\x00", "s" * 32, None):
        assert record_space(forge(fields(space=space))) is None
    # Cut inside the space: the quick look sees too few bytes, the full read fails.
    raw = sign_record(KEY, kind="checkin", space=SPACE, seq=2, prev=PREV, ts=TS,
                      body=bytes(40)).raw
    assert record_space(raw[:42]) is None  # the space is bytes 12-43


@settings(max_examples=examples(200), deadline=None)
@given(kind=st.from_regex(rf"[a-z][a-z0-9_.-]{{0,{MAX_KIND_CHARS - 1}}}", fullmatch=True),
       space=st.one_of(st.just(NEW_SPACE), st.binary(min_size=32, max_size=32)),
       body=st.binary(max_size=80), ts=st.integers(0, 2**53 - 1))
def test_every_record_claims_the_space_it_belongs_to(kind: str, space: bytes, body: bytes,
                                                    ts: int) -> None:
    seq, prev = (1, None) if space == NEW_SPACE else (3, PREV)
    rec = sign_record(KEY, kind=kind, space=space, seq=seq, prev=prev, ts=ts, body=body)
    assert record_space(rec.raw) == rec.space_id
