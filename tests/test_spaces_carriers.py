"""Rule 10 of the fold: members name and drop carriers; the list is a function of the records."""

from __future__ import annotations

import itertools

import msgpack
import pytest

from meshcrew import spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.spaces.bodies import CarrierBody, Draft, draft
from meshcrew.spaces.kinds import MAX_CARRIERS
from spaces_world import World, person, pk

ANA, BO, CY, PI = person("Ana"), person("Bo"), person("Cy"), person("Pi at Ana's")


def crew(world: World) -> bytes:
    space = world.found(ANA)
    world.admit(ANA, BO, space)
    return space


def test_any_member_names_a_carrier_and_every_member_sees_who_did() -> None:
    world = World()
    space = crew(world)
    named = world.sign(BO, space, spaces.name_carrier(world.state(space), pk(BO), pk(PI)))
    state = world.state(space)
    assert state.status(named.id) is not None
    assert state.status(named.id).accepted  # type: ignore[union-attr]
    carrier = state.carriers[pk(PI)]
    assert (carrier.added_by, carrier.record_id) == (pk(BO), named.id)
    assert state.is_carrier(pk(PI))
    assert not state.is_member(pk(PI))  # a carrier is not a member: no epoch key is sealed
    assert pk(PI) not in state.active
    # Naming it makes the keys rotate: the next epoch's transit key is sealed to it (it opens
    # gossip), its epoch key is not (it reads no post).
    assert state.needs_rekey
    world.rotate(BO, space)
    epoch = world.state(space).current_epoch
    assert epoch is not None
    assert pk(PI) not in epoch.shares
    assert set(epoch.carriers) == {pk(PI)}


def test_dropping_a_carrier_makes_the_keys_rotate_without_it() -> None:
    world = World()
    space = crew(world)
    world.sign(BO, space, spaces.name_carrier(world.state(space), pk(BO), pk(PI)))
    world.rotate(BO, space)
    world.sign(ANA, space, spaces.name_carrier(world.state(space), pk(ANA), pk(CY)))
    world.rotate(ANA, space)
    assert set(world.state(space).current_epoch.carriers) == {pk(PI), pk(CY)}  # type: ignore[union-attr]
    world.sign(ANA, space, spaces.drop_carrier(world.state(space), pk(ANA), pk(PI)))
    assert world.state(space).needs_rekey  # the epoch that PI holds is no longer current
    world.rotate(ANA, space)
    epoch = world.state(space).current_epoch
    assert epoch is not None
    assert set(epoch.carriers) == {pk(CY)}


def test_a_member_drops_a_carrier_and_it_can_be_named_again() -> None:
    world = World()
    space = crew(world)
    world.sign(BO, space, spaces.name_carrier(world.state(space), pk(BO), pk(PI)))
    world.sign(ANA, space, spaces.drop_carrier(world.state(space), pk(ANA), pk(PI)))
    assert not world.state(space).is_carrier(pk(PI))
    world.sign(ANA, space, spaces.name_carrier(world.state(space), pk(ANA), pk(PI)))
    assert world.state(space).carriers[pk(PI)].added_by == pk(ANA)


def test_non_members_cannot_name_or_drop_and_bad_drops_are_refused() -> None:
    world = World()
    space = crew(world)
    stranger = world.sign(CY, space, draft(CarrierBody(pk(PI), add=True)))
    drop_unknown = world.sign(BO, space, draft(CarrierBody(pk(CY), add=False)))
    state = world.state(space)
    assert state.status(stranger.id).reason is Reason.NOT_MEMBER  # type: ignore[union-attr]
    assert state.status(drop_unknown.id).reason is Reason.BAD_REFERENCE  # type: ignore[union-attr]
    assert not state.carriers
    with pytest.raises(SpaceError, match="does not carry"):
        spaces.drop_carrier(state, pk(ANA), pk(PI))
    with pytest.raises(SpaceError, match="member"):
        spaces.name_carrier(state, pk(ANA), pk(BO))


def test_a_space_names_at_most_eight_carriers() -> None:
    world = World()
    space = crew(world)
    for n in range(MAX_CARRIERS):
        world.sign(ANA, space, spaces.name_carrier(world.state(space), pk(ANA),
                                                   pk(person(f"carrier {n}"))))
    ninth = world.sign(ANA, space, draft(CarrierBody(pk(person("ninth")), add=True)))
    assert world.state(space).status(ninth.id).reason is Reason.NOT_ALLOWED  # type: ignore[union-attr]
    with pytest.raises(SpaceError, match="at most"):
        spaces.name_carrier(world.state(space), pk(ANA), pk(person("ninth")))


def test_a_removed_members_later_naming_does_not_count() -> None:
    world = World()
    space = crew(world)
    world.admit(ANA, CY, space)
    proposal = world.propose(ANA, space, CY)
    world.consent(BO, space, proposal)
    late = world.sign(CY, space, draft(CarrierBody(pk(PI), add=True)))
    assert not world.state(space).is_carrier(pk(PI))
    assert not world.state(space).status(late.id).accepted  # type: ignore[union-attr]


def test_the_carrier_list_does_not_depend_on_delivery_order() -> None:
    world = World()
    space = crew(world)
    world.sign(ANA, space, spaces.name_carrier(world.state(space), pk(ANA), pk(PI)))
    world.sign(BO, space, spaces.name_carrier(world.state(space), pk(BO), pk(CY)))
    world.sign(BO, space, spaces.drop_carrier(world.state(space), pk(BO), pk(PI)))
    records = world.of(space)
    expected = world.state(space)
    assert set(expected.carriers) == {pk(CY)}
    for order in itertools.islice(itertools.permutations(records), 0, 720, 37):
        assert spaces.fold(space, order) == expected


@pytest.mark.parametrize("tc", [b"junk", {b"short": b"x"}, {pk(PI): b"\x00" * 3},
                                {pk(person(f"c{n}")): b"\x00" * 80 for n in range(9)}])
def test_a_rotation_whose_carrier_keys_do_not_parse_stands_without_them(tc: object) -> None:
    """A release before carriers' transit keys ignores ``tc``: a rotation is accepted alike
    whatever its ``tc`` holds, and one that does not parse seals to no carrier."""
    world = World()
    space = crew(world)
    world.sign(BO, space, spaces.name_carrier(world.state(space), pk(BO), pk(PI)))
    made = spaces.rotate_keys(world.state(space), BO, world.rng)
    wire = msgpack.unpackb(made.body, raw=False)
    wire["tc"] = tc
    rotation = world.sign(BO, space, Draft(made.kind, msgpack.packb(wire, use_bin_type=True)))
    state = world.state(space)
    assert state.status(rotation.id).accepted  # type: ignore[union-attr]
    assert state.epochs[rotation.id].carriers == {}
    assert state.needs_rekey  # sealed to no carrier while one is named: not current
