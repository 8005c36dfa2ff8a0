"""Every refusal of :mod:`meshcrew.sync.wire`'s decoders, with the sentence the node logs about
the peer, and each documented limit at its edge (``docs/sync.md``): exactly at the limit is
accepted, one past it refused. Pure: msgpack payloads built by hand, no session.

Mutation testing (``scripts/mutants``) found the decoders checked by "raises" alone: a guard
made looser, a limit moved by one or a token of any length passed unnoticed.
"""

from __future__ import annotations

import msgpack
import pytest

from meshcrew.errors import LocalProtocolError, RemoteProtocolError
from meshcrew.records import KEY_BYTES, MAX_RECORD_BYTES, MAX_SEQ, Head
from meshcrew.sync.wire import (
    ENTRY_BYTES,
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    MAX_FRONTIER_ENTRIES,
    MAX_OFFERS,
    OFFER_BYTES,
    TOKEN_BYTES,
    DoneMsg,
    FrameBuffer,
    FrontierMsg,
    Hello,
    MsgType,
    Offer,
    ReconcileMsg,
    RecordsMsg,
    decode_frontier,
    decode_message,
    encode_frontier,
    encode_message,
    read_varint,
    varint,
)

TOKEN = b"t" * TOKEN_BYTES


def payload(*fields: object) -> bytes:
    return msgpack.packb(list(fields), use_bin_type=True)


def entry(author: bytes, seq: int, head: bytes = b"h" * 32) -> bytes:
    return author + seq.to_bytes(8, "big") + head


def offers(n: int) -> bytes:
    return b"".join(i.to_bytes(TOKEN_BYTES, "big") + b"d" * (OFFER_BYTES - TOKEN_BYTES)
                    for i in range(n))


@pytest.mark.parametrize(("data", "message"), [
    (b"\xc1", "A sync frame is not valid msgpack."),
    (msgpack.packb({"a": 1}), "A sync frame is not a message array."),
    (payload(), "A sync frame is not a message array."),
    (payload("hello"), "A sync frame is not a message array."),
    (payload(9, TOKEN), "Unknown sync message type 9."),
    (payload(MsgType.HELLO, 2), "A hello message has the wrong shape."),
    (payload(MsgType.HELLO, "2", b""), "A hello message has the wrong shape."),
    (payload(MsgType.HELLO, 2, 7), "The offer list of a sync message is not bytes."),
    (payload(MsgType.HELLO, 2, b"x"),
     f"A hello offers a bad number of spaces (max {MAX_OFFERS})."),
    (payload(MsgType.HELLO, 2, offers(MAX_OFFERS + 1)),
     f"A hello offers a bad number of spaces (max {MAX_OFFERS})."),
    (payload(MsgType.HELLO, 2, offers(1) * 2), "A hello offers the same space twice."),
    (payload(MsgType.FRONTIER, TOKEN), "A frontier message has the wrong shape."),
    (payload(MsgType.FRONTIER, TOKEN[:-1], b""),
     f"The token of a sync message is not {TOKEN_BYTES} bytes."),
    (payload(MsgType.FRONTIER, TOKEN, "entries"), "The frontier of a sync message is not bytes."),
    (payload(MsgType.RECORDS, TOKEN, b"raw"), "A records message has the wrong shape."),
    (payload(MsgType.RECORDS, TOKEN), "A records message has the wrong shape."),
    (payload(MsgType.RECORDS, TOKEN, []), f"A batch holds 0 records, not 1..{MAX_BATCH_RECORDS}."),
    (payload(MsgType.RECORDS, TOKEN, ["text"]), "A batch holds something that is not a record."),
    (payload(MsgType.RECORDS, TOKEN, [bytes(MAX_RECORD_BYTES + 1)]),
     "A batch holds something that is not a record."),
    (payload(MsgType.RECORDS, TOKEN + b"!", [b"r"]),
     f"The token of a sync message is not {TOKEN_BYTES} bytes."),
    (payload(MsgType.DONE, TOKEN, 1), "A done message has the wrong shape."),
    (payload(MsgType.DONE, TOKEN[:8], True),
     f"The token of a sync message is not {TOKEN_BYTES} bytes."),
    (payload(MsgType.RECONCILE, b"", b""),
     f"The token of a sync message is not {TOKEN_BYTES} bytes."),
    (payload(MsgType.RECONCILE, TOKEN), "A reconcile message has the wrong shape."),
    (payload(MsgType.RECONCILE, TOKEN, None),
     "The reconciliation of a sync message is not bytes."),
], ids=["not-msgpack", "a-map", "empty", "text-type", "unknown-type", "hello-short",
        "hello-text-version", "hello-offers-int", "hello-offers-cut", "hello-too-many",
        "hello-twice", "frontier-short", "frontier-short-token", "frontier-text",
        "records-not-list", "records-short", "records-none", "records-text",
        "records-too-big", "records-long-token", "done-not-bool", "done-short-token",
        "reconcile-no-token", "reconcile-short",
        "reconcile-none"])
def test_a_malformed_message_is_refused_with_its_sentence(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        decode_message(data)
    assert str(refused.value) == message


def test_each_limit_holds_exactly_at_its_edge() -> None:
    hello = decode_message(payload(MsgType.HELLO, 2, offers(MAX_OFFERS)))
    assert isinstance(hello, Hello)
    assert len(hello.offers) == MAX_OFFERS
    assert hello.offers[1] == Offer((1).to_bytes(TOKEN_BYTES, "big"), b"d" * TOKEN_BYTES)
    biggest = bytes(MAX_RECORD_BYTES)
    assert decode_message(payload(MsgType.RECORDS, TOKEN, [biggest])) == \
        RecordsMsg(TOKEN, (biggest,))
    batch = [b"r"] * MAX_BATCH_RECORDS
    assert decode_message(payload(MsgType.RECORDS, TOKEN, batch)) == RecordsMsg(TOKEN,
                                                                                tuple(batch))
    with pytest.raises(RemoteProtocolError):
        decode_message(payload(MsgType.RECORDS, TOKEN, [*batch, b"r"]))
    assert decode_message(payload(MsgType.FRONTIER, TOKEN, b"")) == FrontierMsg(TOKEN, b"")
    assert decode_message(payload(MsgType.DONE, TOKEN, True)) == DoneMsg(TOKEN, True)
    assert decode_message(payload(MsgType.RECONCILE, TOKEN, b"")) == ReconcileMsg(TOKEN, b"")


def _author(i: int) -> bytes:
    return i.to_bytes(KEY_BYTES, "big")


@pytest.mark.parametrize(("blob", "message"), [
    (b"x" * (ENTRY_BYTES - 1), "A frontier is not a whole number of entries."),
    (bytes(ENTRY_BYTES * (MAX_FRONTIER_ENTRIES + 1)),
     f"A frontier has more than {MAX_FRONTIER_ENTRIES} authors."),
    (entry(_author(2), 1) + entry(_author(1), 1),
     "A frontier's authors are not sorted and distinct."),
    (entry(_author(1), 1) + entry(_author(1), 2),
     "A frontier's authors are not sorted and distinct."),
    (entry(_author(1), 0), "A frontier entry has a seq out of range."),
    (entry(_author(1), MAX_SEQ), "A frontier entry has a seq out of range."),
], ids=["cut", "too-many", "unsorted", "repeated", "seq-0", "seq-max"])
def test_a_bad_frontier_is_refused_with_its_sentence(blob: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        decode_frontier(blob)
    assert str(refused.value) == message


def test_a_frontier_at_its_limits_is_read_whole() -> None:
    blob = b"".join(entry(_author(i + 1), MAX_SEQ - 1 if i == 0 else 258)
                    for i in range(MAX_FRONTIER_ENTRIES))
    frontier = decode_frontier(blob)
    assert len(frontier) == MAX_FRONTIER_ENTRIES
    assert frontier[_author(1)].seq == MAX_SEQ - 1
    assert frontier[_author(2)].seq == 258  # big-endian, as docs/sync.md lays it out
    assert frontier[_author(2)].id == b"h" * 32


@pytest.mark.parametrize(("value", "encoded"), [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (MAX_FRAME_BYTES, b"\x80\x80\x40"), (2**28 - 1, b"\xff\xff\xff\x7f"),
])
def test_numbers_are_leb128_and_read_back_from_any_offset(value: int, encoded: bytes) -> None:
    """docs/sync.md: unsigned LEB128, least significant group first."""
    assert varint(value) == encoded
    data = b"junk" + encoded + b"rest"
    assert read_varint(data, 4) == (value, 4 + len(encoded))


@pytest.mark.parametrize(("data", "message"), [
    (b"\x80", "A sync message ends inside a number."),
    (b"\x80\x00", "A number in a sync message is not minimally encoded."),
    (b"\xff\xff\xff\xff\x01", "A number in a sync message is too long."),
], ids=["cut", "not-minimal", "too-long"])
def test_a_bad_number_is_refused_with_its_sentence(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        read_varint(data, 0)
    assert str(refused.value) == message


@pytest.mark.parametrize(("data", "message"), [
    (b"\x80\x00", "A frame length is not minimally encoded."),
    (b"\xff\xff\xff\xff\x01", "A frame length prefix is too long."),
    (b"\x00", f"A frame of 0 bytes is outside 1..{MAX_FRAME_BYTES} bytes."),
    (varint(MAX_FRAME_BYTES + 1),
     f"A frame of {MAX_FRAME_BYTES + 1} bytes is outside 1..{MAX_FRAME_BYTES} bytes."),
], ids=["not-minimal", "too-long", "empty", "over"])
def test_a_bad_frame_length_is_refused_before_its_payload(data: bytes, message: str) -> None:
    frames = FrameBuffer()
    frames.feed(data)
    with pytest.raises(RemoteProtocolError) as refused:
        frames.next_frame()
    assert str(refused.value) == message


def test_a_frame_of_exactly_the_limit_is_cut_whole() -> None:
    body = bytes(MAX_FRAME_BYTES)
    frames = FrameBuffer()
    frames.feed(varint(MAX_FRAME_BYTES) + body[:-1])
    assert frames.next_frame() is None  # one byte short: wait
    frames.feed(body[-1:] + b"\x01z")
    assert frames.next_frame() == body
    assert frames.next_frame() == b"z"
    assert frames.next_frame() is None
    assert len(frames) == 0


def test_a_message_of_exactly_the_frame_limit_is_sent_and_one_byte_more_is_not() -> None:
    overhead = len(msgpack.packb([MsgType.RECONCILE, TOKEN, bytes(MAX_FRAME_BYTES - 100)],
                                 use_bin_type=True)) - (MAX_FRAME_BYTES - 100)
    fits = ReconcileMsg(TOKEN, bytes(MAX_FRAME_BYTES - overhead))
    framed = encode_message(fits)
    assert framed[:3] == varint(MAX_FRAME_BYTES)
    assert decode_message(framed[3:]) == fits
    with pytest.raises(LocalProtocolError) as refused:
        encode_message(ReconcileMsg(TOKEN, bytes(MAX_FRAME_BYTES - overhead + 1)))
    assert str(refused.value) == \
        f"a sync frame of {MAX_FRAME_BYTES + 1} bytes is over the limit"


def test_a_malformed_local_frontier_is_never_sent() -> None:
    """A broken record source is this node's fault: refused before a byte goes out."""
    good = {_author(1): Head(MAX_SEQ - 1, b"h" * 32)}
    assert decode_frontier(encode_frontier(good)) == good
    for bad in ({_author(1): Head(MAX_SEQ, b"h" * 32)}, {_author(1): Head(0, b"h" * 32)},
                {_author(1)[:-1]: Head(1, b"h" * 32)}, {_author(1): Head(1, b"h" * 31)}):
        with pytest.raises(LocalProtocolError) as refused:
            encode_frontier(bad)
        assert str(refused.value) == "the record source returned a malformed frontier entry"
