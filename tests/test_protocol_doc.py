"""docs/protocol.md cannot rot: its worked example, limits and reasons are rendered from the code.

Each block below must appear verbatim in the doc. After a deliberate protocol change, print the
new blocks with ``.venv/bin/python tests/test_protocol_doc.py`` and paste them into the doc.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from nacl.signing import SigningKey

from meshcrew import records
from meshcrew.identity import Identity
from meshcrew.reasons import Reason

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

SEED = bytes(range(32))
TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ENVELOPE_REASONS = (
    Reason.TOO_LARGE, Reason.MALFORMED, Reason.UNKNOWN_VERSION, Reason.BAD_FIELD, Reason.BAD_KIND,
    Reason.BAD_SEQ, Reason.BODY_TOO_LARGE, Reason.NOT_CANONICAL, Reason.BAD_SIGNATURE,
    Reason.FROM_FUTURE,
)
"""The reasons records.decode_and_verify gives, in the order of its checks."""

FIELD_NAMES = ("version", "kind", "space", "author", "seq", "prev", "ts", "body", "sig")
_HEADER_BYTES = {0xC4: 2, 0xC5: 3, 0xC6: 5, 0xD9: 2, 0xDA: 3, 0xDB: 5}


def _wrap(hex_text: str, indent: str, width: int = 64) -> list[str]:
    return [indent + hex_text[i : i + width] for i in range(0, len(hex_text), width)]


def _annotated(rec: records.Record) -> list[str]:
    """The record's bytes field by field: type bytes and a note, then any long payload."""
    values = (rec.version, rec.kind, rec.space, rec.author, rec.seq, rec.prev, rec.ts, rec.body,
              rec.sig)
    lines = [f"{'99':<24}array of 9"]
    parts = [b"\x99"]
    for index, (name, value) in enumerate(zip(FIELD_NAMES, values, strict=True)):
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        parts.append(packed)
        first = packed[0]
        if isinstance(value, bytes | str):
            head = 1 if 0xA0 <= first <= 0xBF else _HEADER_BYTES[first]
            note = f'"{value}"' if isinstance(value, str) else f"{len(value)} bytes"
            lines.append(f"{packed[:head].hex(' '):<24}[{index}] {name}: {note}")
            lines += _wrap(packed[head:].hex(), "  ")
        elif value is None:
            lines.append(f"{packed.hex():<24}[{index}] {name}: nil")
        else:
            shown = packed.hex() if len(packed) == 1 else f"{packed[:1].hex()} {packed[1:].hex()}"
            lines.append(f"{shown:<24}[{index}] {name}: {value}")
    assert b"".join(parts) == rec.raw
    return lines


def example_records() -> tuple[records.Record, records.Record]:
    """The genesis of a space and the author's next record in it."""
    key = SigningKey(SEED)
    genesis = records.sign_record(key, kind="example", space=records.NEW_SPACE, seq=1, prev=None,
                                  ts=TS, body=b"hello, crew")
    second = records.sign_record(key, kind="example", space=genesis.id, seq=2, prev=genesis.id,
                                 ts=TS + 60_000, body=b"second")
    return genesis, second


def example_block() -> str:
    """The worked example, as it appears in the doc."""
    genesis, second = example_records()
    author = Identity.from_seed(SEED, "Example")
    signed = records.SIGN_DOMAIN + msgpack.packb(
        [genesis.version, genesis.kind, genesis.space, genesis.author, genesis.seq, genesis.prev,
         genesis.ts, genesis.body], use_bin_type=True)
    assert author.signing_key.verify_key.verify(signed, genesis.sig)
    lines = [
        "```text",
        f"seed (secret)           {SEED.hex()}",
        f"author (public key)     {author.public_key.hex()}",
        f"fingerprint             {author.fingerprint}",
        f"peer id                 {author.peer_id}",
        "",
        "# Record 1: the genesis of a space",
        f"# kind 'example', space NEW_SPACE, seq 1, prev nil, ts {TS}, body b'hello, crew'",
        f"# {len(genesis.raw)} bytes:",
        *_annotated(genesis),
        "",
        f"# signed bytes: SIGN_DOMAIN ({len(records.SIGN_DOMAIN)} bytes) + the 8-array "
        f"({len(signed) - len(records.SIGN_DOMAIN)} bytes)",
        *_wrap(signed.hex(), ""),
        "",
        "# id = BLAKE2b-256(record, person='meshcrew.rec.v1'); the new space's id is this id",
        genesis.id.hex(),
        "",
        "# Record 2: the author's next record in that space",
        f"# kind 'example', space = id of record 1, seq 2, prev = id of record 1, "
        f"ts {second.ts}, body b'second'",
        f"# {len(second.raw)} bytes:",
        *_wrap(second.raw.hex(), ""),
        "# id",
        second.id.hex(),
        "```",
    ]
    return "\n".join(lines)


def limits_table() -> str:
    """The named limits, as they appear in the doc."""
    rows = [
        ("PROTOCOL_VERSION", records.PROTOCOL_VERSION, "the envelope version"),
        ("MAX_RECORD_BYTES", records.MAX_RECORD_BYTES,
         "largest encoded record, signature included"),
        ("MAX_BODY_BYTES", records.MAX_BODY_BYTES, "largest body"),
        ("MAX_KIND_CHARS", records.MAX_KIND_CHARS, "longest kind"),
        ("MAX_SEQ", records.MAX_SEQ, "seq is below this (2^53)"),
        ("MAX_TS_MS", records.MAX_TS_MS, "ts is below this (2^53)"),
        ("MAX_CLOCK_SKEW_MS", records.MAX_CLOCK_SKEW_MS, "how far ahead of the receiver's clock "
         "ts may be"),
        ("KEY_BYTES", records.KEY_BYTES, "space and author"),
        ("ID_BYTES", records.ID_BYTES, "record ids (prev, space ids)"),
        ("SIG_BYTES", records.SIG_BYTES, "sig"),
    ]
    lines = ["| constant | value | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {value} | {meaning} |" for name, value, meaning in rows]
    return "\n".join(lines)


def reasons_table() -> str:
    """The envelope's rejection reasons with their stable values and sentences."""
    lines = ["| value | sentence |", "| --- | --- |"]
    lines += [f"| `{reason.value}` | {reason.sentence} |" for reason in ENVELOPE_REASONS]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("block", [example_block, limits_table, reasons_table],
                         ids=lambda block: block.__name__)
def test_doc_holds_the_block_the_code_renders(doc: str, block: Callable[[], str]) -> None:
    text = block()
    assert text in doc, (f"docs/protocol.md is out of date: replace its {block.__name__} with "
                         f"the output of tests/test_protocol_doc.py")


def test_doc_names_the_constants_it_describes(doc: str) -> None:
    assert f"`{records.SIGN_DOMAIN!r}`" in doc
    assert f'`"{records.ID_PERSON.decode()}"`' in doc
    assert f"`{records._KIND_RE.pattern.removesuffix(chr(92) + 'Z')}`" in doc


def test_example_id_is_the_documented_hash() -> None:
    genesis, second = example_records()
    assert genesis.id == hashlib.blake2b(genesis.raw, digest_size=32,
                                         person=b"meshcrew.rec.v1").digest()
    assert records.decode_and_verify(second.raw) == second


if __name__ == "__main__":
    for render in (example_block, limits_table, reasons_table):
        print(f"<!-- {render.__name__} -->")
        print(render())
        print()
