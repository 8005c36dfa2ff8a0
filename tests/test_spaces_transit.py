"""Gossip sealed in transit (spaces/transit.py): members open it, no one else, and nothing of
the envelope shows (issue 17, item 2)."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshcrew.spaces import CheckIn, drop_carrier, name_carrier
from meshcrew.spaces.sealing import Keyring, unlock
from meshcrew.spaces.transit import (
    KEY_ID_BYTES,
    TRANSIT_VERSION,
    TransitForged,
    TransitKeys,
    TransitUnknown,
    carrier_transit_keys,
    open_transit,
    seal_transit,
    transit_keys,
)
from spaces_world import World, person, pk

ADA, BO, CY = person("Ada"), person("Bo"), person("Cy")


def crew() -> tuple[World, bytes]:
    world = World()
    space = world.found(ADA)
    world.admit(ADA, BO, space)
    world.admit(ADA, CY, space)
    return world, space


def keys_of(world: World, space: bytes, who: SigningKey) -> TransitKeys:
    state = world.state(space)
    return transit_keys(state, unlock(state, who))


def test_a_member_opens_what_another_sealed_and_the_envelope_does_not_show() -> None:
    world, space = crew()
    record = world.post(ADA, space, CheckIn(text="in transit", energy=3))
    sealed = seal_transit(keys_of(world, space, ADA), space, record.raw, world.rng)
    assert sealed is not None
    assert open_transit(keys_of(world, space, BO), space, sealed) == record.raw
    for clear in (space, pk(ADA), msgpack.packb(record.ts), record.ts.to_bytes(8, "big"),
                  record.id):
        assert clear not in sealed
    assert sealed[0] == TRANSIT_VERSION


def test_a_removed_member_cannot_open_what_is_sealed_after_the_rotation() -> None:
    world, space = crew()
    cy_before = keys_of(world, space, CY)
    proposal = world.propose(ADA, space, CY)
    world.consent(BO, space, proposal)
    record = world.post(ADA, space, CheckIn(text="after Cy left", energy=3))  # rotates first
    sealed = seal_transit(keys_of(world, space, ADA), space, record.raw, world.rng)
    assert sealed is not None
    assert open_transit(keys_of(world, space, BO), space, sealed) == record.raw
    for keys in (cy_before, keys_of(world, space, CY)):  # what he held, and what he could get
        with pytest.raises(TransitUnknown):
            open_transit(keys, space, sealed)


def test_a_stranger_holds_no_key_and_seals_nothing() -> None:
    world, space = crew()
    state = world.state(space)
    stranger = transit_keys(state, unlock(state, person("Eve")))
    assert stranger.by_id == {}
    assert stranger.current is None
    assert seal_transit(stranger, space, b"record", world.rng) is None
    sealed = seal_transit(keys_of(world, space, ADA), space, b"record", world.rng)
    assert sealed is not None
    with pytest.raises(TransitUnknown):
        open_transit(stranger, space, sealed)


def test_moved_to_another_space_or_altered_it_does_not_open() -> None:
    world, space = crew()
    other = world.found(ADA, name="Other")
    keys = keys_of(world, space, ADA)
    sealed = seal_transit(keys, space, b"record", world.rng)
    assert sealed is not None
    with pytest.raises(TransitForged):
        open_transit(keys, other, sealed)
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(TransitForged):
        open_transit(keys, space, altered)


def test_keys_follow_rotations_and_seal_under_the_current_epoch() -> None:
    world, space = crew()
    state = world.state(space)
    keys = transit_keys(state, unlock(state, ADA))
    assert len(keys.by_id) == len(state.epochs)  # founder holds every epoch (history on)
    current = state.current_epoch_id
    assert current is not None
    only_current = transit_keys(state, Keyring({current: unlock(state, ADA).epoch_keys[current]},
                                               None))
    assert only_current.current == keys.current


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_any_bytes_are_refused_with_a_reason_not_a_crash(data: bytes) -> None:
    world, space = crew()
    keys = keys_of(world, space, ADA)
    with pytest.raises((TransitUnknown, TransitForged)):
        open_transit(keys, space, data)


def test_the_key_id_has_its_size() -> None:
    world, space = crew()
    keys = keys_of(world, space, ADA)
    assert all(len(kid) == KEY_ID_BYTES for kid in keys.by_id)


def test_a_key_rotation_is_sealed_under_the_epoch_before_it() -> None:
    """The others hold a rotation's key only once they have the rotation: it travels under the
    epoch before it, and what follows under its own."""
    world, space = crew()
    before = world.state(space)
    bo_before = transit_keys(before, unlock(before, BO))
    join = world.join(person("Dee"), world.invite(ADA, space))
    rotation = world.rotate(ADA, space)
    ada = keys_of(world, space, ADA)
    sealed = seal_transit(ada, space, rotation.raw, world.rng, record_id=rotation.id)
    assert sealed is not None
    assert open_transit(bo_before, space, sealed) == rotation.raw
    plain = seal_transit(ada, space, join.raw, world.rng)  # under the rotation's own epoch
    assert plain is not None
    with pytest.raises(TransitUnknown):
        open_transit(bo_before, space, plain)
    assert open_transit(keys_of(world, space, BO), space, plain) == join.raw


PI = person("Pi at Ada's")


def carrier_keys(world: World, space: bytes, carrier: SigningKey) -> TransitKeys:
    state = world.state(space)
    return transit_keys(state, unlock(state, carrier), carrier)


def test_a_named_carrier_opens_gossip_and_reads_no_post() -> None:
    """The rotation that follows a carrier's naming seals the transit key to it: it opens and
    can verify what members gossip, and holds no epoch key to read a post with."""
    world, space = crew()
    world.sign(BO, space, name_carrier(world.state(space), pk(BO), pk(PI)))
    before = carrier_keys(world, space, PI)
    assert before.by_id == {}  # named, but no rotation has sealed it a key yet
    world.rotate(BO, space)
    record = world.post(ADA, space, CheckIn(text="carried, not read", energy=3))
    sealed = seal_transit(keys_of(world, space, ADA), space, record.raw, world.rng)
    assert sealed is not None
    pi = carrier_keys(world, space, PI)
    assert pi.current == keys_of(world, space, ADA).current
    assert open_transit(pi, space, sealed) == record.raw
    assert unlock(world.state(space), PI).epoch_keys == {}  # no epoch key: posts stay sealed
    with pytest.raises(TransitUnknown):  # a key that is not named opens nothing
        open_transit(carrier_keys(world, space, person("Eve")), space, sealed)


def test_a_dropped_carrier_cannot_open_what_is_sealed_after_the_rotation() -> None:
    world, space = crew()
    world.sign(BO, space, name_carrier(world.state(space), pk(BO), pk(PI)))
    world.rotate(BO, space)
    held = carrier_keys(world, space, PI)
    world.sign(ADA, space, drop_carrier(world.state(space), pk(ADA), pk(PI)))
    world.rotate(ADA, space)
    record = world.post(ADA, space, CheckIn(text="after the drop", energy=3))
    sealed = seal_transit(keys_of(world, space, ADA), space, record.raw, world.rng)
    assert sealed is not None
    assert open_transit(keys_of(world, space, BO), space, sealed) == record.raw
    for keys in (held, carrier_keys(world, space, PI)):  # what it held, and what it could get
        with pytest.raises(TransitUnknown):
            open_transit(keys, space, sealed)


def test_a_transit_key_sealed_wrongly_to_a_carrier_is_not_taken() -> None:
    world, space = crew()
    world.sign(BO, space, name_carrier(world.state(space), pk(BO), pk(PI)))
    rotation = world.rotate(BO, space)
    epoch = world.state(space).epochs[rotation.id]
    assert carrier_transit_keys(world.state(space), PI) != {}
    forged = replace(epoch, carriers={pk(PI): bytes(len(epoch.carriers[pk(PI)]))})
    state = replace(world.state(space), epochs={**world.state(space).epochs, rotation.id: forged})
    assert carrier_transit_keys(state, PI) == {}
