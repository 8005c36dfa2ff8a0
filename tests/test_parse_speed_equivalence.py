"""The fast check_text, decode_post and parse_body accept and refuse exactly what the old ones did.

The old code is frozen in ``parse_oracle.py``. For every input both must give the same value, or
raise the same exception type with the same reason, detail and message.
"""

from __future__ import annotations

import dataclasses
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parse_oracle as oracle
from meshcrew.crypto import BLOB_OVERHEAD, SEALED_KEY_BYTES
from meshcrew.records import ID_BYTES, KEY_BYTES, MAX_TS_MS
from meshcrew.spaces import bodies, posts
from meshcrew.spaces import settings as space_settings
from meshcrew.spaces.bodies import LeaveBody
from meshcrew.spaces.kinds import PostKind, RecordKind, SpaceKind

EXAMPLES = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Characters that sit on the borders the checks draw: allowed layout and joiners, C0/C1
# controls, bidi overrides and other format characters, separators, private use, unassigned,
# surrogates, combining marks (NFC) and ordinary text.
SPECIAL = ("\n", "\t", "\r", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\u200b", "\u200c",
           "\u200d", "\u200e", "\u202e", "\u2066", "\ufeff", "\u00ad", "\U000e0001", " ",
           "\u00a0", "\u2003", "\u3000", "\u2028", "\u2029", "\ue000", "\uf8ff",
           "\U000f0000", "\U0010fffd", "\u0378", "\U000effff", "\ufffe", "\ud800", "\udfff",
           "\u0301", "\u0308", "e", "\u00e9", "\u212b", "\uac00", "\u1100", "\u1161", "a", "Z",
           "🫶", "👩", "\U0001f3fd")
any_char = st.characters(exclude_categories=())  # every code point, surrogates included
texts = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), any_char), max_size=40)
# Text that msgpack can carry: UTF-8 has no lone surrogates.
wire_texts = st.text(alphabet=st.one_of(
    st.sampled_from([c for c in SPECIAL if unicodedata.category(c) != "Cs"]),
    st.characters(codec="utf-8")),
    max_size=40)


def _values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """What msgpack can hand over (maps keyed by text or bytes), nested a little."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64 - 1), st.floats(),
                        st.binary(max_size=40), text)
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(text, st.binary(max_size=8)), inner, max_size=4)),
        max_leaves=8)


anything = _values(texts)
wire_anything = _values(wire_texts)


def _outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What ``call(*args, **kwargs)`` gave, in a form two implementations can be compared by."""
    try:
        value = call(*args, **kwargs)
    except Exception as exc:  # every exception must match, whatever its type
        return ("raised", type(exc), getattr(exc, "reason", None), getattr(exc, "detail", None),
                str(exc))
    return ("returned", _shape(value))


def _shape(value: Any) -> Any:
    """A comparable form of a result; posts come from two different (same-named) classes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, getattr(value, "kind", None),
                tuple((item.name, _shape(getattr(value, item.name)))
                      for item in dataclasses.fields(value)))
    if isinstance(value, dict) or type(value).__name__ == "mappingproxy":
        return (type(value).__name__, tuple((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_shape(v) for v in value))
    return (type(value).__name__, repr(value))


def _refused_by_the_old_rule(char: str) -> bool:
    return (unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co")
            and char not in oracle._ALLOWED_CONTROLS)


def test_every_code_point_is_judged_as_before() -> None:
    """The fast path leans on str.isprintable; check it against the old rule everywhere."""
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        refused = _refused_by_the_old_rule(char)
        if char.isprintable():
            assert not refused, hex(point)
        assert space_settings._has_refused_characters(char) is refused, hex(point)


@EXAMPLES
@given(value=st.one_of(texts, texts, anything), max_chars=st.integers(0, 45),
       allow_empty=st.booleans(), field=st.sampled_from(["text", "name"]))
def test_check_text_is_unchanged(value: Any, max_chars: int, allow_empty: bool,
                                 field: str) -> None:
    new = _outcome(space_settings.check_text, value, field, max_chars, allow_empty=allow_empty)
    old = _outcome(oracle.check_text, value, field, max_chars, allow_empty=allow_empty)
    assert new == old


@EXAMPLES
@given(text=st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), any_char), max_size=2100))
def test_check_text_is_unchanged_at_post_lengths(text: str) -> None:
    new = _outcome(space_settings.check_text, text, "text", posts.MAX_TEXT_CHARS)
    old = _outcome(oracle.check_text, text, "text", posts.MAX_TEXT_CHARS)
    assert new == old


RID = bytes(range(ID_BYTES))
GOOD_POSTS: dict[str, dict[str, Any]] = {
    "profile": {"name": "Ada", "bio": "gardener"},
    "checkin": {"text": "arriving", "energy": 3, "compass": {"time": 2, "belonging": 5},
                "ask": "a call?"},
    "reply": {"to": RID, "text": "heard you"},
    "reaction": {"to": RID, "text": "🫶"},
    "ask": {"title": "help moving", "text": "Saturday?"},
    "offer": {"title": "bike repair", "text": ""},
    "followup": {"to": RID, "text": "done", "closes": True},
    "gathering": {"title": "Spring", "when_ms": 1_780_000_000_000, "where": "the hall"},
    "looking_for_crew": {"looking": True, "note": "food co-ops"},
    "crew_card": {"crew": RID, "name": "Moonlit", "open": False, "note": ""},
}
POST_FIELDS = sorted({name for wire in GOOD_POSTS.values() for name in wire})
post_values = st.one_of(
    wire_texts, wire_anything, st.integers(-1, 7), st.sampled_from([0, MAX_TS_MS - 1, MAX_TS_MS]),
    st.binary(min_size=ID_BYTES - 1, max_size=ID_BYTES + 1),
    st.dictionaries(st.sampled_from([*posts.COMPASS_KEYS, "mood"]),
                    st.one_of(st.integers(0, 6), wire_anything), max_size=7))


@st.composite
def post_wires(draw: st.DrawFn) -> Any:
    """Mostly a valid post map with a few fields dropped, replaced or added; sometimes junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(wire_anything)
    kind = draw(st.sampled_from(sorted(GOOD_POSTS)) if draw(st.integers(0, 4))
                else st.one_of(st.sampled_from(list(PostKind)), wire_anything))
    wire = dict(GOOD_POSTS.get(kind, {})) if isinstance(kind, str) else {}
    wire["k"] = kind
    for name in draw(st.lists(st.sampled_from(["k", *POST_FIELDS]), max_size=2)):
        wire.pop(name, None)
    wire.update(draw(st.dictionaries(st.sampled_from([*POST_FIELDS, "extra"]), post_values,
                                     max_size=2)))
    return wire


@EXAMPLES
@given(wire=post_wires())
def test_decode_post_is_unchanged(wire: Any) -> None:
    data = msgpack.packb(wire, use_bin_type=True)
    assert _outcome(posts.decode_post, data) == _outcome(oracle.decode_post, data)


@EXAMPLES
@given(data=st.binary(max_size=60))
def test_decode_post_of_arbitrary_bytes_is_unchanged(data: bytes) -> None:
    assert _outcome(posts.decode_post, data) == _outcome(oracle.decode_post, data)


def test_every_post_kind_decodes_as_before() -> None:
    """Each known kind (and a kind given as a PostKind member) at least once, valid."""
    for kind, fields in GOOD_POSTS.items():
        for tag in (kind, PostKind(kind)):
            data = msgpack.packb({"k": tag, **fields}, use_bin_type=True)
            new = _outcome(posts.decode_post, data)
            assert new[0] == "returned", new
            assert new == _outcome(oracle.decode_post, data)


MISSING = object()
"""Marks a field taken out of the map."""
ODD_TEXTS = ["", " ", "x", "x" * 17, "x" * 121, "e\u0301", "\u00e9", "a\tb\n", "🫶\u200d❤",
             *(f"x{c}y" for c in SPECIAL if unicodedata.category(c) != "Cs")]
ODD_POST_VALUES: list[Any] = [
    MISSING, None, True, False, 0, 1, 3, 5, 6, -1, 2**63, 1.0, 3.0, float("nan"),
    MAX_TS_MS - 1, MAX_TS_MS, *ODD_TEXTS, b"", bytes(ID_BYTES - 1), RID, bytes(ID_BYTES + 1),
    [], [RID], {}, {"time": 3}, {"time": 0}, {"time": 6}, {"time": True}, {"mood": 3},
    {b"time": 3}, {"x" * 40: 1}, {"belonging": 1, "growth": 5, "connection": 2},
]
ODD_POST_KINDS: list[Any] = [
    *GOOD_POSTS, *PostKind, "Profile", "PROFILE", " profile", "profile ", "check-in", "",
    "None", None, 0, 1, True, 1.5, b"profile", ["profile"], {"profile": 1}, "x" * 40,
]


def test_each_post_field_swapped_for_an_odd_value_decodes_as_before() -> None:
    """Every field of every kind (and the kind itself), one at a time, over border values."""
    cases: list[Any] = [{"k": kind, **GOOD_POSTS.get(str(kind), GOOD_POSTS["profile"])}
                        for kind in ODD_POST_KINDS]
    for kind, fields in GOOD_POSTS.items():
        for name in [*fields, "k", "extra"]:
            for value in ODD_POST_VALUES:
                wire = {"k": kind, **fields}
                if value is MISSING:
                    wire.pop(name, None)
                else:
                    wire[name] = value
                cases.append(wire)
    cases += [[], "profile", None, 1, b"\x80", [{"k": "profile", "name": "Ada"}]]
    for wire in cases:
        data = msgpack.packb(wire, use_bin_type=True)
        assert _outcome(posts.decode_post, data) == _outcome(oracle.decode_post, data), wire


SHARES = {bytes([n]) * KEY_BYTES: bytes(SEALED_KEY_BYTES) for n in range(2)}
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "genesis": {"kind": "crew", "hist": False, "s": SHARES,
                "mk": bytes(bodies.META_KEY_BLOB_BYTES), "m": bytes(100)},
    "invite": {"pk": bytes(KEY_BYTES), "exp": 1_780_000_000_000, "uses": 3},
    "join": {"i": RID, "who": bytes(KEY_BYTES), "proof": bytes(bodies.PROOF_BYTES)},
    "leave": {},
    "remove": {"m": bytes(KEY_BYTES), "s": 4, "r": RID, "a": [RID, RID]},
    "consent": {"p": RID},
    "keys": {"n": 2, "p": RID, "s": SHARES, "a": [RID], "h": bytes(60),
             "mk": bytes(bodies.META_KEY_BLOB_BYTES)},
    "sealed": {"e": RID, "c": bytes(BLOB_OVERHEAD + 10)},
    "carrier": {"c": bytes(KEY_BYTES), "a": True, "r": RID},
}
AFTER_THE_ORACLE = [RecordKind.DEVICE, RecordKind.UNLINK]
"""Kinds added after the frozen parser (a member's devices): the oracle does not know them,
so they are not compared; ``tests/test_spaces_devices.py`` checks their bodies."""
KNOWN_KINDS = [kind for kind in RecordKind if kind not in AFTER_THE_ORACLE]
BODY_FIELDS = sorted({name for wire in GOOD_BODIES.values() for name in wire})
BYTE_SIZES = sorted({0, 1, ID_BYTES - 1, ID_BYTES, ID_BYTES + 1, KEY_BYTES, BLOB_OVERHEAD - 1,
                     BLOB_OVERHEAD, bodies.PROOF_BYTES, SEALED_KEY_BYTES,
                     bodies.META_KEY_BLOB_BYTES, bodies.MAX_META_BLOB_BYTES,
                     bodies.MAX_META_BLOB_BYTES + 1, bodies.MAX_HISTORY_BLOB_BYTES,
                     bodies.MAX_HISTORY_BLOB_BYTES + 1})
body_values = st.one_of(
    wire_anything, st.sampled_from(BYTE_SIZES).map(bytes),
    st.sampled_from([*[k.value for k in SpaceKind], "Crew", "tribe", 0, -1, 1, 500, 501,
                     MAX_TS_MS, MAX_TS_MS + 1, True]),
    st.lists(st.sampled_from(BYTE_SIZES[:5]).map(bytes), max_size=3),
    st.dictionaries(st.sampled_from(BYTE_SIZES[:6]).map(bytes),
                    st.sampled_from(BYTE_SIZES).map(bytes), max_size=3))


@st.composite
def bodies_to_parse(draw: st.DrawFn) -> tuple[Any, bytes]:
    """A record kind (known, unknown or not a string) and mostly valid, mutated body bytes."""
    kind: Any = draw(st.sampled_from(sorted(GOOD_BODIES)) if draw(st.integers(0, 4))
                     else st.one_of(st.sampled_from(KNOWN_KINDS),
                                    st.sampled_from(["post", "Sealed", "", None, 1, b"sealed"]),
                                    texts))  # the kind is not packed: surrogates are fine
    if draw(st.integers(0, 9)) == 0:
        packed = wire_anything.map(lambda v: msgpack.packb(v, use_bin_type=True))
        return kind, draw(st.one_of(st.binary(max_size=40), packed))
    wire = dict(GOOD_BODIES.get(str(kind), {}))
    for name in draw(st.lists(st.sampled_from(BODY_FIELDS), max_size=2)):
        wire.pop(name, None)
    wire.update(draw(st.dictionaries(st.sampled_from([*BODY_FIELDS, "x"]), body_values,
                                     max_size=2)))
    return kind, msgpack.packb(wire, use_bin_type=True)


@EXAMPLES
@given(case=bodies_to_parse())
def test_parse_body_is_unchanged(case: tuple[Any, bytes]) -> None:
    kind, data = case
    assert _outcome(bodies.parse_body, kind, data) == _outcome(oracle.parse_body, kind, data)


def test_every_body_kind_parses_as_before() -> None:
    """Each kind (as a string, as a member, and an unhashable kind) at least once."""
    for kind, fields in GOOD_BODIES.items():
        data = msgpack.packb(fields, use_bin_type=True)
        for tag in (kind, RecordKind(kind)):
            new = _outcome(bodies.parse_body, tag, data)
            assert new[0] == "returned", new
            assert new[1] != ("NoneType", "None"), new
            assert new == _outcome(oracle.parse_body, tag, data)
    unhashable: Any = ["sealed"]
    data = msgpack.packb(GOOD_BODIES["sealed"], use_bin_type=True)
    assert bodies.parse_body(unhashable, data) is None
    assert oracle.parse_body(unhashable, data) is None


ODD_BODY_VALUES: list[Any] = [
    MISSING, None, True, False, 0, 1, 2, 3, 500, 501, -1, MAX_TS_MS, MAX_TS_MS + 1, 2**64 - 1,
    1.0, "crew", "dyad", "congregation", "Crew", "CREW", "tribe", "", "x", "1",
    *(bytes(size) for size in BYTE_SIZES), [], [RID], [RID] * 500, [RID] * 501,
    [bytes(ID_BYTES - 1)], [RID, "x"], [RID, None], {}, SHARES,
    {bytes([n % 256, n // 256]) * (KEY_BYTES // 2): bytes(SEALED_KEY_BYTES)
     for n in range(501)},
    {bytes(KEY_BYTES): bytes(SEALED_KEY_BYTES - 1)},
    {bytes(KEY_BYTES - 1): bytes(SEALED_KEY_BYTES)},
    {"k" * KEY_BYTES: bytes(SEALED_KEY_BYTES)}, {bytes(KEY_BYTES): None},
]
ODD_BODY_KINDS: list[Any] = [*GOOD_BODIES, *KNOWN_KINDS, "Sealed", "SEALED", " sealed", "post",
                             "", "None", None, 0, 1, True, b"sealed", ["sealed"], ("sealed",)]


def test_each_body_field_swapped_for_an_odd_value_parses_as_before() -> None:
    """Every field of every kind, one at a time, over border values; and odd kinds."""
    cases: list[tuple[Any, Any]] = [(kind, GOOD_BODIES.get(str(kind), GOOD_BODIES["sealed"]))
                                    for kind in ODD_BODY_KINDS]
    for kind, fields in GOOD_BODIES.items():
        for name in [*fields, "x"]:
            for value in ODD_BODY_VALUES:
                wire = dict(fields)
                if value is MISSING:
                    wire.pop(name, None)
                else:
                    wire[name] = value
                cases.append((kind, wire))
        cases += [(kind, []), (kind, None), (kind, b"\x00"), (kind, [fields])]
    for kind, wire in cases:
        data = msgpack.packb(wire, use_bin_type=True)
        for tail in (b"", b"\x00", b"\xc1"):
            new = _outcome(_as_release_one_reads_it, kind, data + tail)
            assert new == _outcome(oracle.parse_body, kind, data + tail), (kind, wire, tail)


def _as_release_one_reads_it(kind: Any, body: bytes) -> Any:
    """The body as parsed now, less what later releases added on purpose and older ones
    ignore: a leave's ``x`` (the leaver's choice that their posts expire, issue 14). Which
    bodies are accepted, and everything else in them, must still be exactly as before."""
    parsed = bodies.parse_body(kind, body)
    return LeaveBody() if isinstance(parsed, LeaveBody) else parsed


def test_every_record_and_post_kind_has_its_parser() -> None:
    """The lookup tables replace a ``match`` and ``fields()``: none may miss a kind or field."""
    assert set(bodies._PARSERS) == {kind.value for kind in RecordKind}
    assert set(posts._CLASS_OF_VALUE) == {kind.value for kind in PostKind}
    for cls in posts._CLASS_OF_VALUE.values():
        assert posts._FIELD_NAMES[cls] == tuple(item.name for item in dataclasses.fields(cls))
