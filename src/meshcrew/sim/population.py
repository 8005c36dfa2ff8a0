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
at most ~190 joiners).
"""

from __future__ import annotations

import hashlib
import random
import shutil
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

    @property
    def size(self) -> int:
        """How many members."""
        return len(self.keys)

    def spaces_of(self, member: int) -> tuple[SpaceSetup, ...]:
        """The spaces a member belongs to: the congregation and their crew."""
        return (self.congregation, self.crews[self.crew_of[member]])


class _Signer:
    """Chains each author's records per space and dates them a second apart."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(f"meshcrew-sim setup {seed}")
        self.now = _SETUP_START_MS
        self.heads: dict[tuple[bytes, bytes], Record] = {}

    def rng(self, n: int) -> bytes:
        """Seeded random bytes."""
        return self.random.randbytes(n)

    def sign(self, key: SigningKey, space_id: bytes | None, made: spaces.Draft) -> Record:
        """Sign ``made`` as ``key``'s next record in ``space_id`` (None: a new space)."""
        self.now += 1000
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
                                   spaces.rotate_keys(state, founder, signer.rng)))
        state = spaces.fold(space_id, records)
    if state.active != frozenset(bytes(keys[m].verify_key) for m in members):
        raise AssertionError("the setup did not admit every member")  # pragma: no cover
    return SpaceSetup(space_id, kind, members, tuple(records), state)


def build_population(members: int, crews: int, seed: int) -> Population:
    """Sign the congregation and its crews: every member in the congregation and one crew."""
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
    return Population(keys, tuple(bytes(k.verify_key) for k in keys), congregation,
                      tuple(made), tuple(crew_of))


def make_replicas(population: Population, workdir: Path) -> list[Home]:
    """One home folder per member whose replica holds the setup of the member's spaces.

    The congregation's setup is appended once to a template replica, which is copied for every
    member (the same file the member's node would have written); each member's crew setup is
    then appended to its copy.
    """
    template = Home(workdir / "template")
    template.ensure()
    with Replica.open(template) as replica:
        replica.append([r.raw for r in population.congregation.records], now_ms=T0_MS)
    homes: list[Home] = []
    for member in range(population.size):
        home = Home(workdir / f"node-{member:04d}")
        home.ensure()
        shutil.copyfile(template.replica_file, home.replica_file)
        crew = population.crews[population.crew_of[member]]
        with Replica.open(home) as replica:
            replica.append([r.raw for r in crew.records], now_ms=T0_MS)
        homes.append(home)
    return homes
