"""Members on real replicas in temporary home folders (no tests here; shared by the service tests).

Each person has a deterministic key and random bytes, and every member of one ``Town`` reads
the same fake clock, which moves one second per reading, so runs repeat exactly. Records move
between homes only through the service's own ``export`` and ``ingest``, as files would.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.service import Member, MemberReads
from meshcrew.spaces.bodies import SealedBody
from meshcrew.store import Replica

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
HOUR = 3_600_000
DAY = 24 * HOUR
WEEK = 7 * DAY


class FakeClock:
    """A clock that moves one second each time it is read (and jumps when told)."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1000
        return self.now

    def advance(self, ms: int) -> None:
        """Jump forward."""
        self.now += ms


def open_person(root: Path, name: str, salt: bytes) -> tuple[Replica, Identity]:
    """A fresh home folder under ``root`` with its replica open, and ``name``'s identity (the
    same key for the same name and salt in every run)."""
    home = Home(root / name)
    home.ensure()
    return Replica.open(home), Identity.from_seed(hashlib.sha256(salt + name.encode()).digest(),
                                                  name)


Person = TypeVar("Person")


class Homes(Generic[Person]):
    """People under ``root``, each with a home folder and replica of their own, a deterministic
    key (from :attr:`SALT` and the name) and random bytes (seeded by the name); a subclass says
    what a person is made into (:meth:`make`: a service member, an app backend)."""

    SALT: ClassVar[bytes]

    def __init__(self, root: Path) -> None:
        self.root = root
        self.people: dict[str, Person] = {}
        self._replicas: list[Replica] = []

    def make(self, replica: Replica, who: Identity, rng: Callable[[int], bytes]) -> Person:
        """The person over their replica."""
        raise NotImplementedError

    def person(self, name: str) -> Person:
        """A new person with a fresh home folder."""
        replica, who = open_person(self.root, name, self.SALT)
        self._replicas.append(replica)
        self.people[name] = made = self.make(replica, who, random.Random(name).randbytes)
        return made

    def close(self) -> None:
        """Release every replica."""
        for replica in self._replicas:
            replica.close()

    @classmethod
    def opened(cls, root: Path) -> Iterator[Self]:
        """People closed afterwards (for fixtures: ``yield from Town.opened(tmp_path)``)."""
        homes = cls(root)
        try:
            yield homes
        finally:
            homes.close()


class Town(Homes[Member]):
    """Several members sharing one clock."""

    SALT = b"meshcrew service test "

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.clock = FakeClock()

    def make(self, replica: Replica, who: Identity, rng: Callable[[int], bytes]) -> Member:
        """A member of the service."""
        return Member(replica, who, clock=self.clock, rng=rng)


town_at = Town.opened


def send(sender: Member, receiver: Member, space_id: bytes) -> int:
    """Carry every record of a space from one replica to another; returns how many were new."""
    report = receiver.ingest(sender.export(space_id), sender=sender.identity.name)
    return len(report.accepted)


def sync(space_id: bytes, *members: Member) -> None:
    """Exchange records between every pair until nothing new moves (housekeeping included)."""
    for _ in range(5):
        moved = 0
        for sender in members:
            for receiver in members:
                if sender is not receiver:
                    moved += send(sender, receiver, space_id)
        if not moved:
            return
    raise AssertionError("records kept moving after five rounds")


def admit(inviter: Member, joiner: Member, space_id: bytes, *, uses: int = 1) -> None:
    """The offline join: invite, the joiner imports and joins, the inviter rotates, and back."""
    code = inviter.invite(space_id, uses=uses, expires_ms=inviter.now() + WEEK)
    send(inviter, joiner, space_id)
    joiner.join(code)
    report = inviter.ingest(joiner.export(space_id), sender="joiner")
    assert space_id in report.rotated
    send(inviter, joiner, space_id)


def crew_of(town: Town, *names: str, history: bool = True) -> tuple[bytes, list[Member]]:
    """A crew founded by the first name, with the others admitted by the founder, all synced."""
    people = [town.person(name) for name in names]
    space_id = people[0].create_space("Moon", purpose="practice", history=history)
    for joiner in people[1:]:
        admit(people[0], joiner, space_id)
    sync(space_id, *people)
    return space_id, people


def logs(space_id: bytes, *members: MemberReads, events: bool = True) -> list[list[dict[str, Any]]]:
    """Each member's log of the space as JSON objects."""
    return [[e.to_json() for e in m.log(space_id, events=events)] for m in members]


def home_bytes(member: Member) -> bytes:
    """Every file of the member's home folder, end to end (to look for a ciphertext on disk)."""
    home = member.replica.home.path
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def blob_of(member: Member, space: bytes, record_id: bytes) -> bytes:
    """The ciphertext of a sealed record, as the member's view of the space holds it."""
    body = member.view(space).state.bodies[record_id]
    assert isinstance(body, SealedBody)
    return body.blob
