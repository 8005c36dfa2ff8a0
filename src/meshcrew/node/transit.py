"""The node's transit keys, per space, for sealing and opening gossip
(:mod:`meshcrew.spaces.transit`)."""

from __future__ import annotations

import os

from meshcrew.crypto import Rng
from meshcrew.errors import MeshcrewError
from meshcrew.service import Member
from meshcrew.spaces.transit import TransitKeys, open_transit, seal_transit, transit_keys

_NONE = TransitKeys({}, None)


class Transit:
    """Transit keys from the member's keyrings (and, on a carrier, those sealed to it as a
    carrier of the space), kept until membership or keys change.

    Args:
        member: the member service (its lean spaces hold the keyrings).
        rng: randomness for nonces.
    """

    def __init__(self, member: Member, rng: Rng = os.urandom) -> None:
        self._member = member
        self._rng = rng
        self._keys: dict[bytes, TransitKeys] = {}

    def changed(self) -> None:
        """A record that may change membership or keys arrived: derive the keys again."""
        self._keys.clear()

    def keys(self, space_id: bytes) -> TransitKeys:
        """The transit keys this node holds for a space (none if it holds no epoch key and is
        not its carrier)."""
        keys = self._keys.get(space_id)
        if keys is None:
            lean = self._member.lean  # the membership and keys, no post held in memory
            try:
                state, keyring = lean.state(space_id), lean.keyring(space_id)
            except MeshcrewError:
                return _NONE
            keys = self._keys[space_id] = transit_keys(
                state, keyring, self._member.identity.signing_key)
        return keys

    def seal(self, space_id: bytes, raw: bytes, record_id: bytes | None = None
             ) -> bytes | None:
        """A record sealed for the space's topic; None if this member holds no key yet (a key
        rotation, given its ``record_id``, under the epoch before it)."""
        return seal_transit(self.keys(space_id), space_id, raw, self._rng, record_id=record_id)

    def open(self, space_id: bytes, data: bytes) -> bytes:
        """The record inside a message of the space's topic (raises as
        :func:`~meshcrew.spaces.transit.open_transit`)."""
        return open_transit(self.keys(space_id), space_id, data)
