"""Turning what a person typed into a space, member or record id.

* A **space** is named by its full hex id, a unique hex prefix of it, or its unique name (any
  case).
* A **member** by a hex prefix of their key, their fingerprint (or its start; dashes and case
  do not matter), or their unique display name in the space (any case).
* A **record** by a unique hex prefix of its id.

A prefix needs at least :data:`MIN_PREFIX` hex digits. Whatever matches nothing raises
:class:`~meshcrew.errors.UnknownName`; whatever matches several raises
:class:`~meshcrew.errors.AmbiguousName` naming a few of them, so the person can give more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from meshcrew.errors import AmbiguousName, UnknownName

MIN_PREFIX = 4
"""The fewest hex digits accepted as an id prefix."""

_HEX = re.compile(r"[0-9a-f]+\Z")
_SHOWN = 3


def is_hex_prefix(text: str) -> bool:
    """Whether ``text`` can be an id prefix: 4 to 64 lowercase or uppercase hex digits."""
    return MIN_PREFIX <= len(text) <= 64 and _HEX.match(text.lower()) is not None


def _one(text: str, what: str, found: Iterable[bytes], labels: Mapping[bytes, str],
         hint: str) -> bytes:
    matches = sorted(set(found))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UnknownName(f"No {what} matches {text!r}; {hint}.")
    shown = ", ".join(f"{labels.get(m, '')} {m.hex()[:12]}".strip() for m in matches[:_SHOWN])
    more = f" and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
    raise AmbiguousName(f"{text!r} matches {len(matches)} {what}s ({shown}{more}); give more "
                        "of the id.")


def pick_space(text: str, names: Mapping[bytes, str | None]) -> bytes:
    """The space named by ``text`` among ``names`` (space id → name, None if unreadable)."""
    text = text.strip()
    lowered = text.lower()
    if len(lowered) == 64 and is_hex_prefix(lowered):
        exact = bytes.fromhex(lowered)
        if exact in names:
            return exact
    found = [sid for sid, name in names.items()
             if name is not None and name.casefold() == text.casefold()]
    if is_hex_prefix(lowered):
        found += [sid for sid in names if sid.hex().startswith(lowered)]
    labels = {sid: name or "(locked)" for sid, name in names.items()}
    return _one(text, "space", found, labels, "see the list with: meshcrew spaces")


def pick_member(text: str, members: Iterable[tuple[bytes, str, str]]) -> bytes:
    """The member named by ``text`` among ``(key, name, fingerprint)`` triples."""
    text = text.strip()
    lowered = text.lower()
    compact = text.replace("-", "").upper()
    rows = list(members)
    found = [key for key, name, _ in rows if name.casefold() == text.casefold()]
    if is_hex_prefix(lowered):
        found += [key for key, _, _ in rows if key.hex().startswith(lowered)]
    if len(compact) >= MIN_PREFIX:
        found += [key for key, _, fpr in rows if fpr.replace("-", "").startswith(compact)]
    labels = {key: name for key, name, _ in rows}
    return _one(text, "member", found, labels, "see the list with: meshcrew members SPACE")


def pick_record(text: str, ids: Iterable[bytes], *, what: str = "record",
                labels: Mapping[bytes, str] | None = None,
                listing: str = "meshcrew log SPACE") -> bytes:
    """The record whose id starts with the hex digits ``text``, among ``ids`` (``listing``
    is the command that shows them)."""
    lowered = text.strip().lower()
    if not is_hex_prefix(lowered):
        article = "an" if what[:1] in ("a", "e", "i", "o", "u") else "a"
        raise UnknownName(f"{text!r} is not {article} {what} id: give at least {MIN_PREFIX} of "
                          f"its hex digits (as {listing} shows them).")
    found = [rid for rid in ids if rid.hex().startswith(lowered)]
    return _one(text, what, found, labels or {}, f"see the ids with: {listing}")
