"""A small world of members writing real signed records, for the spaces tests.

Each person is a deterministic ed25519 key. ``World`` keeps every record made, chains each
author's records per space (seq, prev), and dates them from a fake clock that only moves when
told. Honest actions use the builders with the author's view = every record made so far in that
space; tests that attack craft bodies by hand and sign them with :meth:`World.sign`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.records import NEW_SPACE, Record, sign_record
from meshcrew.spaces import (
    Draft,
    InviteCode,
    Post,
    Rhythm,
    SpaceKind,
    SpaceMeta,
    SpaceState,
    decode_invite_code,
)
from meshcrew.spaces.bodies import parse_body
from meshcrew.spaces.cards import prove_card

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
HOUR = 3_600_000
DAY = 24 * HOUR
WEEK = 7 * DAY


def person(name: str) -> SigningKey:
    """The same key for the same name in every run."""
    return SigningKey(hashlib.sha256(b"meshcrew spaces test " + name.encode()).digest())


def pk(key: SigningKey) -> bytes:
    """The public key bytes."""
    return bytes(key.verify_key)


class World:
    """Records made by several people in several spaces, with a fake clock."""

    def __init__(self, seed: int = 0, now: int = T0) -> None:
        self._random = random.Random(seed)
        self.now = now
        self.records: list[Record] = []
        self.heads: dict[tuple[bytes, bytes], Record] = {}

    def rng(self, n: int) -> bytes:
        """Deterministic random bytes."""
        return self._random.randbytes(n)

    def tick(self, ms: int = 1000) -> int:
        """Move the clock forward and return the new time."""
        self.now += ms
        return self.now

    def sign(self, key: SigningKey, space_id: bytes | None, made: Draft, *,
             ts: int | None = None, record: bool = True) -> Record:
        """Sign ``made`` as ``key``'s next record in ``space_id`` (None: a new space)."""
        head = self.heads.get((pk(key), space_id)) if space_id is not None else None
        rec = sign_record(key, kind=made.kind, space=space_id or NEW_SPACE,
                          seq=head.seq + 1 if head else 1, prev=head.id if head else None,
                          ts=self.tick() if ts is None else ts, body=made.body)
        if record:
            self.keep(rec)
        return rec

    def keep(self, rec: Record) -> None:
        """Add a record made elsewhere and make it its author's head."""
        self.records.append(rec)
        self.heads[(rec.author, rec.space_id)] = rec

    def of(self, space_id: bytes) -> list[Record]:
        """Every record made in a space."""
        return [r for r in self.records if r.space_id == space_id]

    def state(self, space_id: bytes, records: Iterable[Record] | None = None) -> SpaceState:
        """The fold of a space over every record made (or the ones given)."""
        return spaces.fold(space_id, self.of(space_id) if records is None else records)

    # Honest actions -------------------------------------------------------------------------

    def found(self, key: SigningKey, kind: SpaceKind = SpaceKind.CREW, name: str = "Crew", *,
              history: bool = True, rhythm: Rhythm | None = None,
              parent: bytes | None = None) -> bytes:
        """Create a space; returns its id."""
        meta = SpaceMeta(name, f"the {name} purpose", rhythm or Rhythm(), parent)
        return self.sign(key, None, spaces.create_space(key, kind, meta, self.rng,
                                                        history=history)).id

    def invite(self, inviter: SigningKey, space_id: bytes, *, uses: int = 1,
               ttl: int = WEEK, ts: int | None = None) -> InviteCode:
        """Make an invite; returns the code as the invitee would decode it."""
        made, secret = spaces.create_invite(self.state(space_id), pk(inviter),
                                            expires_ms=self.now + ttl, rng=self.rng, uses=uses)
        rec = self.sign(inviter, space_id, made, ts=ts)
        return decode_invite_code(spaces.invite_code(rec, secret, ("/ip4/127.0.0.1/tcp/1",)))

    def join(self, joiner: SigningKey, code: InviteCode, *, ts: int | None = None) -> Record:
        """Sign a join with a code."""
        return self.sign(joiner, code.space_id, spaces.join_space(code, joiner), ts=ts)

    def rotate(self, key: SigningKey, space_id: bytes, *, ts: int | None = None) -> Record:
        """Rotate the keys as ``key`` sees the space."""
        return self.sign(key, space_id, spaces.rotate_keys(self.state(space_id), key, self.rng),
                         ts=ts)

    def admit(self, inviter: SigningKey, joiner: SigningKey, space_id: bytes) -> Record:
        """Invite, join, and the inviter's key rotation; returns the join."""
        join = self.join(joiner, self.invite(inviter, space_id))
        self.rotate(inviter, space_id)
        return join

    def post(self, key: SigningKey, space_id: bytes, post: Post, *,
             ts: int | None = None) -> Record:
        """Seal and sign a post, rotating keys first if the author's view needs it."""
        state = self.state(space_id)
        if spaces.writable_epoch(state, pk(key)) is None:
            self.rotate(key, space_id)
            state = self.state(space_id)
        return self.sign(key, space_id, spaces.seal_post(state, key, post, self.rng), ts=ts)

    def leave(self, key: SigningKey, space_id: bytes) -> Record:
        """Leave a space."""
        return self.sign(key, space_id, spaces.leave_space(self.state(space_id), pk(key)))

    def propose(self, key: SigningKey, space_id: bytes, member: SigningKey) -> Record:
        """Propose removing ``member``."""
        return self.sign(key, space_id, spaces.propose_removal(self.state(space_id), pk(key),
                                                               pk(member)))

    def consent(self, key: SigningKey, space_id: bytes, proposal: Record) -> Record:
        """Consent to a removal proposal."""
        return self.sign(key, space_id, spaces.consent_to_removal(self.state(space_id), pk(key),
                                                                  proposal.id))

    def card(self, key: SigningKey, congregation: bytes, crew: bytes, name: str, *,
             open: bool, note: str = "", ts: int | None = None) -> Record:
        """Post a crew's card, proven with the crew's card key as ``key`` holds it."""
        crew_state = self.state(crew)
        meta_key = spaces.unlock(crew_state, key).meta_key
        assert meta_key is not None, "only a member of the crew holds its card key"
        card = prove_card(spaces.CrewCard(crew, name, open, note), congregation=congregation,
                          author=pk(key), meta_key=meta_key, genesis=crew_state.records[crew].raw)
        return self.post(key, congregation, card, ts=ts)

    def opened(self, key: SigningKey, space_id: bytes,
               records: Iterable[Record] | None = None) -> spaces.OpenedSpace:
        """What ``key`` can read of the space."""
        state = self.state(space_id, records)
        return spaces.open_posts(state, spaces.unlock(state, key))


@dataclass
class Crew:
    """A crew in a :class:`World` and what each of its actors (``ACTORS``, by index) has seen of
    it, for the property tests, which found it and add moves of their own."""

    ACTORS: ClassVar[Sequence[SigningKey]] = ()
    w: World = field(default_factory=World)
    space: bytes = b""
    views: list[set[bytes]] = field(default_factory=list)
    """The ids of the records each actor has seen."""
    by_id: dict[bytes, Record] = field(default_factory=dict)
    honest: set[bytes] = field(default_factory=set)
    """Records made by honest moves."""
    proposals: list[bytes] = field(default_factory=list)
    codes: list[InviteCode] = field(default_factory=list)
    dishonest: bool = False
    """Set while a dishonest move runs."""

    def __post_init__(self) -> None:
        self.views = [set() for _ in self.ACTORS]

    def state_of(self, i: int) -> SpaceState:
        """The space as actor ``i`` sees it."""
        return spaces.fold(self.space, (self.by_id[r] for r in self.views[i]))

    def make(self, i: int, made: Draft) -> Record:
        """Actor ``i`` signs ``made`` (and has seen it)."""
        return self.keep(i, self.w.sign(self.ACTORS[i], self.space, made))

    def keep(self, i: int, rec: Record) -> Record:
        """Actor ``i`` has made ``rec``: honest unless a dishonest move runs."""
        self.by_id[rec.id] = rec
        self.views[i].add(rec.id)
        if not self.dishonest:
            self.honest.add(rec.id)
        return rec

    def learn(self, i: int, j: int) -> None:
        """Actor ``i`` syncs from actor ``j``."""
        self.views[i] |= self.views[j]

    def sync_all(self) -> None:
        """Every actor has seen every record."""
        for view in self.views:
            view.update(self.by_id)


Move = tuple[str, int, int, int]
C = TypeVar("C", bound=Crew)


def play(crew: C, moves: Iterable[Move], run: Callable[[C, Move], None],
         honest_moves: Collection[str], *, in_sync: bool = False) -> set[bytes]:
    """Apply ``moves`` with ``run`` (each after a :meth:`Crew.sync_all` if ``in_sync``) and
    return the ids of the records made honestly: the crew's founding records and those the
    moves named in ``honest_moves`` added to the world. They are counted from the world's
    records, not from ``crew.honest``, and checked equal to it, so a property over the honest
    records cannot hold over an empty or a short set. What the views learn is checked too:
    after a ``("sync", a, b, _)`` move, ``a`` and ``b`` have seen the same records."""
    made = {r.id for r in crew.w.records}
    for move in moves:
        if in_sync:
            crew.sync_all()
        before = len(crew.w.records)
        run(crew, move)
        if move[0] not in honest_moves:
            continue
        made.update(r.id for r in crew.w.records[before:])
        if move[0] == "sync":
            assert crew.views[move[1]] == crew.views[move[2]], move
    assert crew.honest == made
    return made


def with_dependants(state: SpaceState, seeds: set[bytes]) -> set[bytes]:
    """``seeds`` and every refused record of ``state`` that builds on them, however far (by its
    ``prev`` or by a record its body names): what a refusal by design voids."""
    out = set(seeds)
    grew = True
    while grew:
        grew = False
        for rid, rec in state.records.items():
            if rid in out or state.statuses[rid].accepted:
                continue
            body = parse_body(rec.kind, rec.body)
            deps = {rec.prev, *(spaces.order.references(body) if body else ())}
            if deps & out:
                out.add(rid)
                grew = True
    return out
