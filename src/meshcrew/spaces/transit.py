"""Gossip sealed in transit: a whole signed record under a key only the space's members and
carriers hold.

A record's envelope (space id, author key, seq, timestamp) is in the clear so that any replica
can verify it. On a space's gossip topic a record travels wrapped::

    version (1 byte, 1) || key id (8 bytes) || nonce (24) || XChaCha20-Poly1305 ciphertext

under the *transit key* of an epoch, derived from the epoch's key (so it rotates with membership
like the epoch keys, and every member who can read the epoch can open its gossip) and sealed to
each carrier the space names in the rotation that opens the epoch (a carrier verifies and
forwards gossip but holds no epoch key, so it reads no post; naming or dropping one rotates the
keys, so a dropped carrier opens nothing sealed after it), with
associated data ``TRANSIT_AD || space id`` (a message moved to another space's topic does not
open). The key id names the transit key without revealing anything: a keyed hash of the key.
A peer handed the topic without the key sees only the key id, sizes and timing.

Pure: no I/O; randomness is passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from meshcrew.crypto import KEY_BYTES, Rng, decrypt, encrypt, open_sealed
from meshcrew.errors import DecryptError
from meshcrew.spaces.sealing import Keyring
from meshcrew.spaces.state import SpaceState

TRANSIT_VERSION = 1
TRANSIT_AD = b"meshcrew/transit/v1\x00"
KEY_ID_BYTES = 8
_KEY_PERSON = b"meshcrew.transit"
_ID_PERSON = b"meshcrew.tkid"


class TransitUnknown(Exception):
    """Not a transit message this node can open: another format or version, or sealed under
    a key this member does not hold (yet). Not proof of anything: sync brings the record."""


class TransitForged(Exception):
    """Sealed under a key this member holds, but it does not open: altered or made wrongly."""


def transit_key(epoch_key: bytes) -> bytes:
    """The transit key of an epoch."""
    return hashlib.blake2b(b"", key=epoch_key, digest_size=KEY_BYTES, person=_KEY_PERSON).digest()


def key_id(key: bytes) -> bytes:
    """The public name of a transit key."""
    return hashlib.blake2b(key, digest_size=KEY_ID_BYTES, person=_ID_PERSON).digest()


@dataclass(frozen=True, slots=True)
class TransitKeys:
    """The transit keys one member holds for one space (never log them)."""

    by_id: Mapping[bytes, bytes] = field(repr=False)
    """Key id → transit key, for every epoch the member holds."""
    current: bytes | None = field(repr=False)
    """The key id to seal with: the current epoch's if held, else the newest held."""
    before: Mapping[bytes, bytes | None] = field(default_factory=dict, repr=False)
    """Epoch id → the key id to seal that epoch's own ``keys`` record with: the newest held
    epoch before it (the others do not hold its key until they have the record)."""

    def __repr__(self) -> str:
        return f"TransitKeys({len(self.by_id)} keys)"


def carrier_transit_keys(state: SpaceState, carrier: SigningKey) -> dict[bytes, bytes]:
    """Epoch id → transit key, of every epoch whose rotation sealed it to ``carrier`` (a
    carrier holds no epoch key: it opens gossip, never a post)."""
    me = bytes(carrier.verify_key)
    found = {}
    for epoch in state.epochs.values():
        sealed = epoch.carriers.get(me)
        if sealed is None:
            continue
        try:
            key = open_sealed(carrier, sealed)
        except DecryptError:
            continue  # sealed wrongly by its author: that epoch's gossip stays closed to us
        if len(key) == KEY_BYTES:
            found[epoch.id] = key
    return found


def transit_keys(state: SpaceState, keyring: Keyring,
                 carrier: SigningKey | None = None) -> TransitKeys:
    """The transit keys of every epoch in ``keyring`` and, given this node's key as a
    ``carrier``, of every epoch sealed to it as one."""
    keys = {epoch_id: transit_key(k) for epoch_id, k in keyring.epoch_keys.items()}
    if carrier is not None:
        keys = {**carrier_transit_keys(state, carrier), **keys}
    by_id: dict[bytes, bytes] = {}
    held: list[tuple[int, bytes, bytes]] = []  # (number, epoch id, key id)
    current = None
    for epoch_id, key in keys.items():
        epoch = state.epochs.get(epoch_id)
        if epoch is None:
            continue
        kid = key_id(key)
        by_id[kid] = key
        held.append((epoch.number, epoch_id, kid))
        if epoch_id == state.current_epoch_id:
            current = kid
    held.sort()
    if current is None and held:
        current = held[-1][2]
    before = {epoch_id: held[i - 1][2] if i else None
              for i, (_, epoch_id, _) in enumerate(held)}
    return TransitKeys(by_id, current, before)


def seal_transit(keys: TransitKeys, space_id: bytes, raw: bytes, rng: Rng, *,
                 record_id: bytes | None = None) -> bytes | None:
    """``raw`` sealed for the space's topic; None if the member holds no key to seal with.

    Given its ``record_id``, a ``keys`` record (whose id is its epoch's) is sealed under the
    epoch before it, which the other members already hold; everything else under the current.
    """
    kid = keys.current
    if record_id is not None and record_id in keys.before:
        kid = keys.before[record_id]
    if kid is None:
        return None
    return (bytes([TRANSIT_VERSION]) + kid
            + encrypt(keys.by_id[kid], raw, TRANSIT_AD + space_id, rng))


def open_transit(keys: TransitKeys, space_id: bytes, data: bytes) -> bytes:
    """The signed record inside a transit message.

    Raises:
        TransitUnknown: not a transit message, or under a key this member does not hold.
        TransitForged: under a key it holds, but it does not open.
    """
    if len(data) < 1 + KEY_ID_BYTES or data[0] != TRANSIT_VERSION:
        raise TransitUnknown("not a transit message of a known version")
    key = keys.by_id.get(data[1:1 + KEY_ID_BYTES])
    if key is None:
        raise TransitUnknown("sealed under a key this member does not hold")
    try:
        return decrypt(key, data[1 + KEY_ID_BYTES:], TRANSIT_AD + space_id)
    except DecryptError:
        raise TransitForged("a transit message that does not open under its key") from None
