"""Property tests of a member's devices: random histories with second laptops converge.

Four members (m0 founded the crew; all let in) each have a second laptop (d0..d3). Every key
acts on its own view (the records it has synced), so certificates, revocations, removals,
leaves and posts from both laptops of a member race for real. Dishonest moves sign what the
builders refuse: forged certificates, a second member claiming a laptop, a revoked laptop
still writing, a device joining as a member. Every delivery order must give the same state,
and the state must keep the invariants of rules 12 and 13.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.spaces import CheckIn, InviteCode, MemberStatus, SpaceState
from meshcrew.spaces.bodies import DeviceBody, JoinBody, SealedBody, draft
from meshcrew.spaces.devices import (
    DEVICE_DOMAIN,
    certify_device,
    device_certificate,
    revoke_device,
    unlink_device,
)
from meshcrew.spaces.extend import extend
from meshcrew.spaces.invites import prove_invite
from spaces_world import Crew, person, pk, play, with_dependants

MEMBERS = [person(f"m{i}") for i in range(4)]
LAPTOPS = [person(f"d{i}") for i in range(4)]
KEYS = MEMBERS + LAPTOPS
"""Actors by index: 0-3 member keys, 4-7 their second laptops (laptop i + 4 is member i's)."""
N = len(KEYS)


@dataclass
class Sim(Crew):
    """A crew of four and what each key has seen of it."""

    ACTORS: ClassVar[Sequence[SigningKey]] = KEYS

    def __post_init__(self) -> None:
        super().__post_init__()
        w = self.w
        self.space = w.found(MEMBERS[0])
        for i in (1, 2, 3):
            w.admit(MEMBERS[0], MEMBERS[i], self.space)
        for rec in w.records:
            self.by_id[rec.id] = rec
            self.honest.add(rec.id)
        self.sync_all()


def _owner(i: int) -> int:
    return i if i < 4 else i - 4


def run(sim: Sim, op: tuple[str, int, int, int]) -> None:
    """Apply one move; moves the actor's view makes impossible are skipped."""
    name, a, b, c = op
    key, w = KEYS[a], sim.w
    state = sim.state_of(a)
    sim.dishonest = name in DISHONEST
    try:
        match name:
            case "sync":
                sim.learn(a, b)
                sim.learn(b, a)
            case "link":  # member m links their laptop: it learns the space from them
                m = _owner(a)
                laptop = m + 4
                if (pk(KEYS[laptop]), sim.space) in w.heads:
                    return  # it is in the space already
                sim.learn(laptop, m)
                cert = certify_device(MEMBERS[m], pk(KEYS[laptop]))
                sim.make(laptop, device_certificate(sim.state_of(laptop), pk(MEMBERS[m]), cert))
                sim.learn(m, laptop)
                if c % 2:  # sometimes the member is slow to rotate the keys
                    sim.make(m, spaces.rotate_keys(sim.state_of(m), MEMBERS[m], w.rng))
            case "unlink":  # from the member key (it holds the signature) or the laptop's twin
                m = _owner(a)
                laptop = pk(KEYS[m + 4])
                sim.make(m, unlink_device(sim.state_of(m), pk(MEMBERS[m]), laptop,
                                          revoke_device(MEMBERS[m], laptop)))
            case "rotate":
                sim.make(a, spaces.rotate_keys(state, key, w.rng))
            case "post":
                if spaces.writable_epoch(state, pk(key)) is None:
                    sim.make(a, spaces.rotate_keys(state, key, w.rng))
                    state = sim.state_of(a)
                sim.make(a, spaces.seal_post(state, key, CheckIn("hi", 1 + c % 5), w.rng))
            case "leave":
                sim.make(a, spaces.leave_space(state, pk(key)))
            case "propose":
                rec = sim.make(a, spaces.propose_removal(state, pk(key), pk(MEMBERS[b % 4])))
                sim.proposals.append(rec.id)
            case "consent" if sim.proposals:
                pid = sim.proposals[c % len(sim.proposals)]
                sim.make(a, spaces.consent_to_removal(state, pk(key), pid))
            case "invite":
                made, secret = spaces.create_invite(state, pk(key), expires_ms=w.now + 10**7,
                                                    rng=w.rng)
                sim.codes.append(InviteCode(sim.space, sim.make(a, made).id, secret))
            # Dishonest moves: records every honest replica must judge alike.
            case "forged_cert":  # a laptop signs its own "certificate" for member b
                sig = key.sign(DEVICE_DOMAIN + pk(MEMBERS[b % 4]) + pk(key)).signature
                sim.make(a, _raw_cert(sim, a, pk(MEMBERS[b % 4]), sig))
            case "claim":  # a laptop presents member b's real certificate too
                sig = certify_device(MEMBERS[b % 4], pk(key)) if b % 4 != a else None
                if sig is not None:
                    sim.make(a, _raw_cert(sim, a, pk(MEMBERS[b % 4]), sig))
            case "stale_write":  # writes under any epoch it holds, revoked or not
                keys = spaces.unlock(state, key).epoch_keys
                if keys:
                    sim.make(a, draft(SealedBody(sorted(keys)[c % len(keys)], w.rng(60))))
            case "device_join" if sim.codes and a >= 4:
                code = sim.codes[c % len(sim.codes)]
                me = pk(key)
                sim.make(a, draft(JoinBody(code.invite_id, me,
                                           prove_invite(code.secret, sim.space, me))))
    except SpaceError:
        pass  # the actor's own view forbids it: an honest client would not send it


def _raw_cert(sim: Sim, i: int, member: bytes, signature: bytes) -> spaces.Draft:
    state = sim.state_of(i)
    return draft(DeviceBody(member, signature, state.current_epoch_id or state.space_id))


HONEST = ["sync", "link", "unlink", "rotate", "post", "leave", "propose", "consent", "invite"]
DISHONEST = ["forged_cert", "claim", "stale_write", "device_join"]
moves = st.lists(st.tuples(st.sampled_from(HONEST * 3 + DISHONEST), st.integers(0, N - 1),
                           st.integers(0, N - 1), st.integers(0, 7)), min_size=4, max_size=30)
honest_moves = st.lists(st.tuples(st.sampled_from(HONEST[1:]), st.integers(0, N - 1),
                                  st.integers(0, N - 1), st.integers(0, 7)),
                        min_size=4, max_size=24)
# Reasons only an attack produces: honest clients never meet them, even in races.
ATTACK_ONLY = {Reason.DEVICE_UNPROVEN, Reason.DEVICE_CLAIMED, Reason.NOT_ALLOWED,
               Reason.BAD_BODY, Reason.FORK, Reason.CHAIN_BROKEN}


def check_invariants(state: SpaceState) -> None:
    """What every state must satisfy, whatever was sent."""
    position = {rid: n for n, rid in enumerate(state.order)}
    for key, device in state.devices.items():
        assert key not in state.members  # one key, one member
        assert device.member in state.members
        assert state.status(device.cert_id) == spaces.state.ACCEPTED
        mine = [state.records[rid] for rid in state.order if state.records[rid].author == key]
        if device.revoked_by is not None:
            assert device.last_seq is not None
            assert all(r.seq <= device.last_seq for r in mine)
        member = state.members[device.member]
        if member.status is MemberStatus.REMOVED:
            assert member.ended_id is not None
            assert all(position[r.id] < position[member.ended_id] for r in mine)
    for rid in state.order:  # every accepted record speaks for a member
        record = state.records[rid]
        assert record.kind == "join" or state.member_of(record.author) is not None
        body = state.bodies.get(rid)
        if isinstance(body, SealedBody):
            assert record.author in state.epochs[body.epoch].recipients
    epoch = state.current_epoch
    if epoch is not None:
        assert epoch.recipients == state.recipients
    assert state.active <= state.members.keys()


def voided(state: SpaceState) -> set[bytes]:
    """Records refused by design (a removal, a revocation) and what builds on them."""
    return with_dependants(state, {rid for rid, s in state.statuses.items() if s.reason in (
        Reason.REMOVED_MEMBER, Reason.DEVICE_OF_REMOVED, Reason.DEVICE_REVOKED)})


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=moves, seed=st.integers(0, 2**32 - 1))
def test_every_delivery_order_gives_the_same_state(ops: list[tuple[str, int, int, int]],
                                                   seed: int) -> None:
    sim = Sim()
    honest = play(sim, ops, run, HONEST)
    records = sim.w.of(sim.space)
    reference = spaces.fold(sim.space, records)
    check_invariants(reference)
    gone = voided(reference)
    for rid in honest:
        if rid not in gone:
            assert reference.statuses[rid].reason not in ATTACK_ONLY, reference.statuses[rid]
    shuffler = random.Random(seed)
    for _ in range(3):
        delivered = records + shuffler.sample(records, k=len(records) // 3)
        shuffler.shuffle(delivered)
        assert spaces.fold(sim.space, delivered) == reference
    subset = [r for r in records if r.id == sim.space or shuffler.random() < 0.7]
    check_invariants(spaces.fold(sim.space, subset))


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=honest_moves)
def test_honest_devices_in_sync_are_never_refused(ops: list[tuple[str, int, int, int]]) -> None:
    """When every key has every record before acting, every honest record counts, except what
    a removal or a revocation voids by design."""
    sim = Sim()
    honest = play(sim, ops, run, HONEST, in_sync=True)
    state = spaces.fold(sim.space, sim.w.of(sim.space))
    check_invariants(state)
    gone = voided(state)
    refused = {rid: state.statuses[rid] for rid in honest
               if not state.statuses[rid].accepted and rid not in gone}
    assert refused == {}


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=moves, seed=st.integers(0, 2**32 - 1), tail=st.integers(1, 12))
def test_extend_equals_the_fold_with_devices(ops: list[tuple[str, int, int, int]], seed: int,
                                             tail: int) -> None:
    """The fast path takes a device's posts exactly as the fold does, or declines."""
    sim = Sim()
    for op in ops:
        run(sim, op)
    shuffler = random.Random(seed)
    for key in KEYS:  # more posts from whoever may write, laptops included
        state = spaces.fold(sim.space, sim.w.of(sim.space))
        if state.is_admitted(pk(key)) and spaces.writable_epoch(state, pk(key)) is not None:
            for n in range(shuffler.randint(0, 2)):
                sim.w.post(key, sim.space, CheckIn(f"more {n}", 3))
    records = sim.w.of(sim.space)
    whole = spaces.fold(sim.space, records)
    for held, arrived in ((records[:-tail], records[-tail:]),
                          ([r for r in records if shuffler.random() < 0.8 or r.id == sim.space],
                           None)):
        if arrived is None:
            arrived = [r for r in records if r not in held]
        if held:
            extended = extend(spaces.fold(sim.space, held), arrived)
            assert extended is None or extended == whole


def test_a_linked_laptops_posts_take_the_fast_path() -> None:
    """The property above also passes if the fast path declines every device's post: here it
    must take a laptop's next posts (one, then a batch with its member's) as the fold does."""
    sim = Sim()
    run(sim, ("link", 0, 0, 1))  # m0 links d0 and rotates the keys
    sim.sync_all()
    records = sim.w.of(sim.space)
    for batch in ([(4, 1)], [(0, 2), (4, 3), (4, 4)]):
        held = records
        for actor, energy in batch:
            sim.make(actor, spaces.seal_post(sim.state_of(actor), KEYS[actor],
                                             CheckIn("hi", energy), sim.w.rng))
        records = sim.w.of(sim.space)
        arrived = records[len(held):]
        assert [r.author for r in arrived] == [pk(KEYS[a]) for a, _ in batch]
        whole = spaces.fold(sim.space, records)
        assert pk(LAPTOPS[0]) in whole.devices
        assert all(whole.statuses[r.id].accepted for r in arrived)
        extended = extend(spaces.fold(sim.space, held), arrived)
        assert extended is not None, "the fast path declined a laptop's post"
        assert extended == whole


def test_the_signing_keys_are_distinct() -> None:
    assert len({pk(k) for k in KEYS}) == N
    assert all(isinstance(k, SigningKey) for k in KEYS)
