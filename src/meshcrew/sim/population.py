"""The members of a simulated congregation and the membership records that made it.

Everything here is real: ed25519 keys, records signed with :func:`meshcrew.records.sign_record`,
bodies made by the space builders (``create_space``, ``create_invite``, ``join_space``,
``rotate_keys``) and membership read back with :func:`meshcrew.spaces.fold`. The setup is made
once per scenario before simulated time starts (the congregation and its crews already exist);
the simulation then carries the posts.

Every member belongs to the congregation and to exactly one crew (crews as even as possible,
members dealt out at random). Member 0 founds the congregation; the first member of each crew
founds it. A founder makes one invite with as many uses as there are joiners, everyone joins,
and the founder rotates the keys (more than once for a big congregation: one rotation takes in
at most ~190 joiners). When the scenario has carriers, each crew's founder then names the
crew's carriers with ``carrier`` records (``spaces.name_carrier``); a carrier's replica starts
with the setup of the crews that name it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.home import Home
from meshcrew.records import NEW_SPACE, Record, sign_record
from meshcrew.spaces import Period, Rhythm, SpaceKind, SpaceMeta, SpaceState
from meshcrew.store import Replica

T0_MS = 1_767_571_200_000
"""Simulated time 0: 2026-01-05 00:00 UTC, a Monday."""
_SETUP_START_MS = T0_MS - 86_400_000
_INVITE_TTL_MS = 30 * 86_400_000


@dataclass(frozen=True, slots=True)
class SpaceSetup:
    """One space: its id, kind, members (node numbers) and the records that made it."""

    space_id: bytes
    kind: SpaceKind
    members: tuple[int, ...]
    records: tuple[Record, ...]
    state: SpaceState
    """The fold of ``records``: the membership every member starts from."""


@dataclass(frozen=True, slots=True)
class Population:
    """The members, the congregation and the crews."""

    keys: tuple[SigningKey, ...]
    publics: tuple[bytes, ...]
    congregation: SpaceSetup
    crews: tuple[SpaceSetup, ...]
    crew_of: tuple[int, ...]
    """Per member, the index of their crew in ``crews``."""
    carrier_keys: tuple[SigningKey, ...] = ()
    """Keys of the always-on carriers, nodes ``size``, ``size + 1``, ... (members of nothing)."""
    carriers: tuple[tuple[int, ...], ...] = ()
    """Per crew, the nodes its records name as carriers (always-on ones or members)."""

    @property
    def size(self) -> int:
        """How many members."""
        return len(self.keys)

    @property
    def nodes(self) -> int:
        """How many nodes: the members, then the always-on carriers."""
        return len(self.keys) + len(self.carrier_keys)

    def key_of(self, node: int) -> SigningKey:
        """The identity key of a node (member or always-on carrier)."""
        return self.keys[node] if node < self.size else self.carrier_keys[node - self.size]

    def spaces_of(self, member: int) -> tuple[SpaceSetup, ...]:
        """The spaces a member belongs to: the congregation and their crew (none for an
        always-on carrier)."""
        if member >= self.size:
            return ()
        return (self.congregation, self.crews[self.crew_of[member]])

    def carried_by(self, node: int) -> tuple[SpaceSetup, ...]:
        """The crews that name ``node`` as a carrier."""
        return tuple(crew for crew, named in zip(self.crews, self.carriers, strict=True)
                     if node in named)


class _Signer:
    """Chains each author's records per space and dates them a second apart."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(f"meshcrew-sim setup {seed}")
        self.now = _SETUP_START_MS
        self.heads: dict[tuple[bytes, bytes], Record] = {}

    def rng(self, n: int) -> bytes:
        """Seeded random bytes."""
        return self.random.randbytes(n)

    @property
    def next_ms(self) -> int:
        """The time the next record will be signed at (its ``ts``)."""
        return self.now + 1000

    def sign(self, key: SigningKey, space_id: bytes | None, made: spaces.Draft) -> Record:
        """Sign ``made`` as ``key``'s next record in ``space_id`` (None: a new space)."""
        self.now = self.next_ms
        head = self.heads.get((bytes(key.verify_key), space_id)) if space_id else None
        record = sign_record(key, kind=made.kind, space=space_id or NEW_SPACE,
                             seq=head.seq + 1 if head else 1, prev=head.id if head else None,
                             ts=self.now, body=made.body)
        self.heads[(record.author, record.space_id)] = record
        return record


def member_key(seed: int, member: int) -> SigningKey:
    """The same key for the same member of the same seeded scenario, in every run."""
    return SigningKey(hashlib.sha256(b"meshcrew sim %d member %d" % (seed, member)).digest())


def _found(signer: _Signer, keys: tuple[SigningKey, ...], members: tuple[int, ...],
           kind: SpaceKind, meta: SpaceMeta) -> SpaceSetup:
    founder = keys[members[0]]
    records = [signer.sign(founder, None, spaces.create_space(founder, kind, meta, signer.rng))]
    space_id = records[0].id
    state = spaces.fold(space_id, records)
    made, secret = spaces.create_invite(state, bytes(founder.verify_key), rng=signer.rng,
                                        expires_ms=signer.now + _INVITE_TTL_MS,
                                        uses=len(members) - 1)
    records.append(signer.sign(founder, space_id, made))
    code = spaces.decode_invite_code(spaces.invite_code(records[-1], secret))
    records += [signer.sign(keys[m], space_id, spaces.join_space(code, keys[m]))
                for m in members[1:]]
    state = spaces.fold(space_id, records)
    while state.needs_rekey:
        records.append(signer.sign(founder, space_id,
                                   spaces.rotate_keys(state, founder, signer.rng,
                                                      now_ms=signer.next_ms)))
        state = spaces.fold(space_id, records)
    if state.active != frozenset(bytes(keys[m].verify_key) for m in members):
        raise AssertionError("the setup did not admit every member")  # pragma: no cover
    return SpaceSetup(space_id, kind, members, tuple(records), state)


def carrier_key(seed: int, carrier: int) -> SigningKey:
    """The key of the scenario's always-on carrier number ``carrier``."""
    return SigningKey(hashlib.sha256(b"meshcrew sim %d carrier %d" % (seed, carrier)).digest())


def _name_carriers(signer: _Signer, keys: tuple[SigningKey, ...], crew: SpaceSetup,
                   carriers: tuple[bytes, ...]) -> SpaceSetup:
    founder = keys[crew.members[0]]
    records = list(crew.records)
    state = crew.state
    for carrier in carriers:
        made = spaces.name_carrier(state, bytes(founder.verify_key), carrier)
        records.append(signer.sign(founder, crew.space_id, made))
        state = spaces.fold(crew.space_id, records)
    while state.needs_rekey:  # as Member.add_carrier: the transit key goes to the carriers
        records.append(signer.sign(founder, crew.space_id,
                                   spaces.rotate_keys(state, founder, signer.rng,
                                                      now_ms=signer.next_ms)))
        state = spaces.fold(crew.space_id, records)
    if set(state.carriers) != set(carriers):
        raise AssertionError("the setup did not name every carrier")  # pragma: no cover
    return SpaceSetup(crew.space_id, crew.kind, crew.members, tuple(records), state)


CarrierChoice = Callable[[tuple[int, ...]], tuple[tuple[int, ...], ...]]
"""Given each member's crew, the nodes each crew names as carriers."""


def build_population(members: int, crews: int, seed: int, *,
                     carriers: CarrierChoice | None = None) -> Population:
    """Sign the congregation and its crews: every member in the congregation and one crew.

    Args:
        members: how many members.
        crews: how many crews.
        seed: the scenario's seed.
        carriers: given each member's crew, the nodes each crew names as carriers: members
            (not of that crew), or ``members + i`` for the ``i``-th always-on carrier. None:
            no carriers. The carrier records come after every other setup record, so the rest
            of the setup is the same with or without them.
    """
    keys = tuple(member_key(seed, m) for m in range(members))
    signer = _Signer(seed)
    congregation = _found(signer, keys, tuple(range(members)), SpaceKind.CONGREGATION,
                          SpaceMeta("Congregation", "the simulated congregation",
                                    Rhythm(Period.WEEKLY)))
    dealt = list(range(members))
    signer.random.shuffle(dealt)
    crew_of = [0] * members
    made: list[SpaceSetup] = []
    for c in range(crews):
        crew = tuple(sorted(dealt[c::crews]))
        for m in crew:
            crew_of[m] = c
        made.append(_found(signer, keys, crew, SpaceKind.CREW,
                           SpaceMeta(f"Crew {c}", "a simulated crew", Rhythm(Period.DAILY),
                                     congregation.space_id)))
    chosen = carriers(tuple(crew_of)) if carriers is not None else ((),) * crews
    extra = max((n for named in chosen for n in named), default=members - 1) - members + 1
    carrier_keys = tuple(carrier_key(seed, i) for i in range(extra))
    if carriers is not None:
        every = keys + carrier_keys
        for c, named in enumerate(chosen):
            if any(n in made[c].members for n in named):
                raise ValueError("a crew's member cannot be its carrier")
            made[c] = _name_carriers(signer, keys, made[c],
                                     tuple(bytes(every[n].verify_key) for n in named))
    return Population(keys, tuple(bytes(k.verify_key) for k in keys), congregation,
                      tuple(made), tuple(crew_of), carrier_keys, tuple(chosen))


def make_replicas(population: Population, workdir: Path) -> list[Home]:
    """One home folder per node whose replica holds the setup of the node's spaces.

    The congregation's setup is appended once to a template replica, which is copied for every
    member (the same file the member's node would have written); each member's crew setup is
    then appended to its copy, and each carrier's replica gets the setup of the crews it
    carries.
    """
    template = Home(workdir / "template")
    template.ensure()
    with Replica.open(template) as replica:
        replica.append([r.raw for r in population.congregation.records], now_ms=T0_MS)
    homes: list[Home] = []
    for node in range(population.nodes):
        home = Home(workdir / f"node-{node:04d}")
        home.ensure()
        if node < population.size:
            shutil.copyfile(template.replica_file, home.replica_file)
        crews = [s for s in population.spaces_of(node) if s.kind is not SpaceKind.CONGREGATION]
        crews += population.carried_by(node)
        with Replica.open(home) as replica:
            for crew in crews:
                replica.append([r.raw for r in crew.records], now_ms=T0_MS)
        homes.append(home)
    return homes
