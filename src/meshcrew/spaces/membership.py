"""The membership of a space without holding its posts: :func:`fold_membership`.

A node that serves no screen needs to know who is a member of each space (the gossip validator,
sync, transit keys), not what the posts say. The fold (:func:`meshcrew.spaces.fold.fold`) keeps
every record of the space in memory, and a space of 100,000 posts costs tens of megabytes that
way. ``fold_membership`` computes the same membership from the records that are not posts, kept
whole, and of each post only its id and the epoch it names, dropped at the end.

It gives the state the fold gives for every record that is not a post (status, members, epochs,
invites, removals, devices, carriers: everything but the posts themselves), because it runs the
fold's own steps: its parsing and ordering hints (:mod:`meshcrew.spaces.fold`), its canonical
order (:mod:`meshcrew.spaces.order`: Kahn's sort taking the ready record with the smallest id),
here over each author's chain of posts taken one post at a time, and its rules
(:class:`~meshcrew.spaces.rules.Machine`), which every post goes through too. What it leaves out
is what only posts make: their statuses, their place in ``order`` and ``sequence``, and
``records``/``bodies`` of posts (so ``state.head`` sees membership records only: ask the
replica's frontier for heads).

It takes records as a replica holds them: each author's chain whole from seq 1 in chain order
(each record follows the one before it, and is not dated before it), no two records at one
place; a replica's accepted records are that (``meshcrew.store.ingest``), and
:meth:`Replica.each_space_record` streams them so.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass

from meshcrew.records import Record, RecordError
from meshcrew.spaces.bodies import Body, SealedBody, parse_body
from meshcrew.spaces.fold import _parse_all, _soft_deps
from meshcrew.spaces.kinds import RecordKind
from meshcrew.spaces.order import references
from meshcrew.spaces.rules import Machine
from meshcrew.spaces.state import Outcome, SpaceState, Status

_NOT_A_POST = b""
"""In a chain's epochs, the place of a record that is not a post."""


@dataclass(slots=True)
class _Chain:
    """One author's records, by seq: ids, and for posts the epoch they name (None if the body
    does not parse)."""

    ids: list[bytes] = field(default_factory=list)
    epochs: list[bytes | None] = field(default_factory=list)
    done: int = 0
    """The highest seq applied (the sort takes a chain in order)."""
    queued: bool = False
    """Whether its next post is in the heap."""
    waits_from: int = 0
    """The first seq that waits (0: none does)."""
    last_ts: int = 0
    """The ``ts`` of its newest record (a replica takes none dated before its predecessor)."""

    def last_ready(self) -> int:
        return len(self.ids) if self.waits_from == 0 else self.waits_from - 1


def _stub(space_id: bytes, author: bytes, seq: int, rid: bytes, prev: bytes | None) -> Record:
    """A post as the rules see it when another record names it: its place, not its body."""
    return Record(1, RecordKind.SEALED, space_id, author, seq, prev, 0, b"", b"", b"", rid)


def _seqs_in(body: Body | None) -> set[int]:
    """Every whole number a body holds (the seqs it names, among others), for the places the
    ordering hints may point at (:func:`meshcrew.spaces.fold._soft_deps`)."""
    found: set[int] = set()
    pending: list[object] = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, tuple | list):
            pending.extend(value)
        elif is_dataclass(value) and not isinstance(value, type):
            pending.extend(getattr(value, f.name) for f in fields(value))
    return found


def fold_membership(space_id: bytes, records: Iterable[Record]) -> SpaceState:
    """The state of ``space_id`` as :func:`~meshcrew.spaces.fold.fold` gives it for every
    record that is not a post, holding only the ids and epochs of the posts.

    Args:
        space_id: the space.
        records: its records as a replica holds them: each author's in chain order from seq 1.

    Raises:
        ValueError: a record of another space, or not a replica's chains.
    """
    kept: dict[bytes, Record] = {}
    chains: dict[bytes, _Chain] = {}
    interned: dict[bytes, bytes] = {}
    for record in records:
        if record.space_id != space_id:
            raise ValueError(f"record {record.id.hex()} belongs to another space")
        chain = chains.setdefault(record.author, _Chain())
        if record.seq != len(chain.ids) + 1 or record.ts < chain.last_ts or \
                record.prev != (chain.ids[-1] if chain.ids else None):
            raise ValueError("fold_membership takes whole chains in order")
        chain.ids.append(record.id)
        chain.last_ts = record.ts
        if record.kind != RecordKind.SEALED:
            kept[record.id] = record
            chain.epochs.append(_NOT_A_POST)
            continue
        try:
            body = parse_body(record.kind, record.body)
        except RecordError:
            chain.epochs.append(None)
            continue
        assert isinstance(body, SealedBody)
        chain.epochs.append(interned.setdefault(body.epoch, body.epoch))
    return _MembershipFold(space_id, kept, chains, interned).run()


class _MembershipFold:
    """The fold's steps over membership records and chains of posts (see the module)."""

    def __init__(self, space_id: bytes, kept: dict[bytes, Record], chains: dict[bytes, _Chain],
                 epochs: dict[bytes, bytes]) -> None:
        self.space_id = space_id
        self.kept = kept
        self.chains = chains
        self.bodies, self.early = _parse_all(space_id, kept)
        self.deps: dict[bytes, list[bytes]] = {}
        for rid, record in kept.items():
            deps = [] if record.creates_space else [space_id]
            if record.prev is not None:
                deps.append(record.prev)
            body = self.bodies.get(rid)
            if body is not None:
                deps.extend(references(body))
            self.deps[rid] = deps
        # Where each named id that is not a membership record sits, if it is a post here.
        named = {dep for deps in self.deps.values() for dep in deps} | set(epochs)
        named -= kept.keys()
        self.posts: dict[bytes, tuple[bytes, int]] = {}
        if named:
            for author, chain in chains.items():
                for i, rid in enumerate(chain.ids):
                    if rid in named:
                        self.posts[rid] = (author, i + 1)
        self.waiting: dict[bytes, set[bytes]] = {}

    # -- which records wait (rule 2) ----------------------------------------------------------

    def _present(self, rid: bytes) -> bool:
        return rid in self.kept or rid in self.posts

    def _waits(self, rid: bytes) -> bool:
        """Whether a present record waits, as far as known so far."""
        if rid in self.kept:
            return rid in self.waiting
        author, seq = self.posts[rid]
        start = self.chains[author].waits_from
        return start != 0 and seq >= start

    def _find_waiting(self) -> None:
        changed = True
        while changed:
            changed = False
            for rid, deps in self.deps.items():
                if rid in self.waiting:
                    continue
                missing = {dep for dep in deps if not self._present(dep)}
                if missing or any(self._waits(dep) for dep in deps):
                    self.waiting[rid] = missing
                    self._wait_from(self.kept[rid].author, self.kept[rid].seq)
                    changed = True
            for epoch in self._epochs():
                if self._present(epoch) and not self._waits(epoch):
                    continue
                for author, chain in self.chains.items():
                    if epoch in chain.epochs:
                        seq = chain.epochs.index(epoch) + 1
                        changed |= self._wait_from(author, seq)

    def _epochs(self) -> set[bytes]:
        return {e for chain in self.chains.values() for e in set(chain.epochs)
                if e is not None and e != _NOT_A_POST}

    def _wait_from(self, author: bytes, seq: int) -> bool:
        chain = self.chains[author]
        if chain.waits_from == 0 or seq < chain.waits_from:
            chain.waits_from = seq
            return True
        return False

    def _ready_kept(self) -> list[bytes]:
        return [rid for rid, record in self.kept.items() if rid not in self.waiting
                and self.chains[record.author].last_ready() >= record.seq]

    def _causal_past(self, starts: set[bytes]) -> set[bytes]:
        """The membership records ``starts`` build on, as the fold's hints find them
        (``meshcrew.spaces.fold._causal_past``), walking each post through its chain: every
        record of an author's chain up to the highest place reached, and what each names."""
        reach: dict[bytes, int] = {}
        seen: set[bytes] = set()
        stack = [dep for rid in starts for dep in self.deps[rid]]
        while stack:
            rid = stack.pop()
            record = self.kept.get(rid)
            found = self.posts.get(rid) if record is None else (record.author, record.seq)
            if found is None:  # absent: what builds on it waits, and starts no walk
                continue
            author, seq = found
            below = reach.get(author, 0)
            if seq <= below:
                continue
            reach[author] = seq
            chain = self.chains[author]
            for place in range(below + 1, seq + 1):
                at, epoch = chain.ids[place - 1], chain.epochs[place - 1]
                if epoch == _NOT_A_POST:
                    seen.add(at)
                    stack.extend(self.deps[at])
                elif epoch is not None:
                    stack.append(epoch)
        return seen

    # -- the order and the rules --------------------------------------------------------------

    def run(self) -> SpaceState:
        self._find_waiting()
        kept, chains, space_id = self.kept, self.chains, self.space_id
        ready = self._ready_kept()
        in_order = set(ready)
        # The fold's ordering hints, over the ready membership records and the posts at every
        # place a hint may point at (a named seq plus one, or seq 1).
        seqs = {0} | {r.seq for r in kept.values()}
        for body in self.bodies.values():
            seqs |= _seqs_in(body)
        by_id = dict(kept)
        probes: dict[bytes, bytes] = {}
        """The posts at those places, with their authors."""
        for author, chain in chains.items():
            for seq in seqs:
                place = seq + 1
                if place <= chain.last_ready() and chain.epochs[place - 1] != _NOT_A_POST:
                    rid = chain.ids[place - 1]
                    by_id[rid] = _stub(space_id, author, place, rid,
                                       chain.ids[place - 2] if place > 1 else None)
                    probes[rid] = author
        hinted: dict[bytes, list[bytes]] = {rid: [] for rid in [*ready, *probes]}
        soft = _soft_deps(by_id, self.bodies, self.early, hinted, self._causal_past)
        for rid, (author, seq) in self.posts.items():  # the rules read what a record names
            by_id[rid] = _stub(space_id, author, seq, rid,
                               chains[author].ids[seq - 2] if seq > 1 else None)
        machine = Machine(space_id, by_id, self.bodies, self.early)
        sort = _Sort(self, soft, in_order, probes, machine)
        sequence, stalled = sort.run()
        for rid, missing in self.waiting.items():
            machine.statuses[rid] = self.early.get(rid, Status(Outcome.WAITING,
                                                               missing=frozenset(missing)))
        for rid in kept:  # behind a waiting post
            if rid not in machine.statuses:
                machine.statuses[rid] = self.early.get(rid, Status(Outcome.WAITING,
                                                                   missing=frozenset()))
        machine.by_id = kept
        return machine.result(tuple(sequence), stalled)


class _Sort:
    """:func:`meshcrew.spaces.order.canonical_order` over the ready records, with each
    author's posts taken one at a time from their chain; applies each record as it goes."""

    def __init__(self, fold: _MembershipFold, soft: dict[bytes, set[bytes]],
                 ready: set[bytes], probes: dict[bytes, bytes], machine: Machine) -> None:
        self.fold = fold
        self.machine = machine
        self.ready = ready
        self.probes = probes
        self.heap: list[tuple[bytes, bytes | None]] = []
        self.done: set[bytes] = set()
        self.hard_left: dict[bytes, int] = {}
        self.soft_left: dict[bytes, int] = {}
        self.children: dict[bytes, list[bytes]] = {}
        self.soft_children: dict[bytes, list[bytes]] = {}
        self.post_soft: dict[bytes, int] = {}
        """Per post with ordering hints, how many of its hints are not applied yet."""
        self.post_soft_children: dict[bytes, list[bytes]] = {}
        self.blocked: dict[bytes, set[bytes]] = {}
        """Per id, the authors whose next post waits for it."""
        for rid in ready:
            unique = set(fold.deps[rid])
            self.hard_left[rid] = len(unique)
            for dep in unique:
                self.children.setdefault(dep, []).append(rid)
        for rid, before in soft.items():
            after = {dep for dep in before if dep in ready and dep != rid}
            if rid in ready:
                self.soft_left[rid] = len(after)
                for dep in after:
                    self.soft_children.setdefault(dep, []).append(rid)
            elif rid in probes and after:  # a post at a place a hint points at
                self.post_soft[rid] = len(after)
                for dep in after:
                    self.post_soft_children.setdefault(dep, []).append(rid)

    def _done(self, rid: bytes) -> bool:
        if rid in self.fold.kept:
            return rid in self.done
        author, seq = self.fold.posts[rid]
        return self.fold.chains[author].done >= seq

    def _next_post(self, author: bytes) -> tuple[bytes, bytes | None] | None:
        """The author's next post if it is in the sort and not applied: its id and epoch."""
        chain = self.fold.chains[author]
        seq = chain.done + 1
        if chain.queued or seq > chain.last_ready() or chain.epochs[seq - 1] == _NOT_A_POST:
            return None
        return chain.ids[seq - 1], chain.epochs[seq - 1]

    def _hard_met(self, author: bytes, epoch: bytes | None) -> bool:
        for dep in (self.fold.space_id, epoch):
            if dep is not None and not self._done(dep):
                self.blocked.setdefault(dep, set()).add(author)
                return False
        return True

    def _advance(self, author: bytes) -> None:
        """Queue the author's next post if everything before it is applied."""
        found = self._next_post(author)
        if found is None:
            return
        rid, epoch = found
        if self._hard_met(author, epoch) and self.post_soft.get(rid, 0) == 0:
            self.fold.chains[author].queued = True
            heapq.heappush(self.heap, (rid, author))

    def _stalled(self) -> tuple[bytes, bytes | None] | None:
        """The smallest record held back only by its hints (a cycle of them)."""
        found: list[tuple[bytes, bytes | None]] = [
            (rid, None) for rid in self.ready if rid not in self.done
                 and self.hard_left[rid] == 0 and self.soft_left.get(rid, 0) > 0]
        for author in self.fold.chains:
            post = self._next_post(author)
            if post is not None and self.post_soft.get(post[0], 0) > 0 and all(
                    dep is None or self._done(dep) for dep in (self.fold.space_id, post[1])):
                found.append((post[0], author))
        return min(found, key=lambda item: item[0]) if found else None

    def run(self) -> tuple[list[bytes], bool]:
        fold, machine = self.fold, self.machine
        stalled = False
        for rid in sorted(self.ready):
            if self.hard_left[rid] == 0 and self.soft_left.get(rid, 0) == 0:
                heapq.heappush(self.heap, (rid, None))
        for author in fold.chains:
            self._advance(author)
        sequence: list[bytes] = []
        while True:
            if not self.heap:
                item = self._stalled()
                if item is None:
                    break
                stalled = True
                if item[1] is None:
                    self.soft_left[item[0]] = 0
                else:
                    self.post_soft[item[0]] = 0
                    fold.chains[item[1]].queued = True
                heapq.heappush(self.heap, item)
            rid, of_post = heapq.heappop(self.heap)
            if of_post is not None:
                self._apply_post(rid, of_post)
                author = of_post
            elif rid in self.done:
                continue
            else:
                self.done.add(rid)
                record = fold.kept[rid]
                machine.apply(record)
                sequence.append(rid)
                author = record.author
                fold.chains[author].done = record.seq
            self._after(rid)
            self._advance(author)
        return sequence, stalled

    def _apply_post(self, rid: bytes, author: bytes) -> None:
        """A post goes through the rules as the fold's would; only its effects on the state
        are kept (its status and place are not)."""
        chain = self.fold.chains[author]
        seq = chain.done + 1
        chain.done, chain.queued = seq, False
        epoch = chain.epochs[seq - 1]
        machine = self.machine
        if epoch is not None:
            record = _stub(self.fold.space_id, author, seq, rid,
                           chain.ids[seq - 2] if seq > 1 else None)
            with contextlib.suppress(RecordError):  # the rules' own step for one record
                machine._apply(record, SealedBody(epoch, b""))
        machine.applied_seq[author] = max(seq, machine.applied_seq.get(author, 0))

    def _after(self, rid: bytes) -> None:
        """What applying ``rid`` frees."""
        for child in self.children.get(rid, ()):
            self.hard_left[child] -= 1
            if self.hard_left[child] == 0 and self.soft_left.get(child, 0) == 0:
                heapq.heappush(self.heap, (child, None))
        for child in self.soft_children.get(rid, ()):
            if self.soft_left[child] > 0:
                self.soft_left[child] -= 1
                if self.soft_left[child] == 0 and self.hard_left[child] == 0:
                    heapq.heappush(self.heap, (child, None))
        for post in self.post_soft_children.get(rid, ()):
            if self.post_soft[post] > 0:
                self.post_soft[post] -= 1
                if self.post_soft[post] == 0:
                    self._advance(self.probes[post])
        for author in self.blocked.pop(rid, ()):
            self._advance(author)
