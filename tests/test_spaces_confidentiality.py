"""Confidentiality: who can decrypt what, shown by trying to decrypt and failing.

``try_everything`` is the attacker: given every record, it opens every key share it can with
its identity key, follows every history link it can open, adds any keys it holds from elsewhere,
and then tries every one of those keys on every post. A flag saying "no access" would prove
nothing; these tests count what actually opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import msgpack
from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.crypto import decrypt, open_sealed
from meshcrew.errors import DecryptError
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces import Ask, CheckIn, Gathering, LookingForCrew, Profile, Reply, SpaceKind
from meshcrew.spaces.bodies import GenesisBody, KeysBody, SealedBody, draft, parse_body
from meshcrew.spaces.sealing import HISTORY_AD, epoch_ad, post_ad
from spaces_world import World, person, pk

ADA, BO, CY, DAN, EVE = (person(n) for n in ("ada", "bo", "cy", "dan", "eve"))
SECRET_WORDS = ("wobbly", "Moonlit Crew", "gardeners of Tuesday")


def try_everything(records: Iterable[Record], key: SigningKey,
                   extra_keys: Iterable[bytes] = ()) -> tuple[set[bytes], set[bytes]]:
    """Every key ``key`` can recover by brute trying, and every post id those keys open."""
    records = list(records)
    keys = set(extra_keys)
    bodies = [(r, parse_body(r.kind, r.body)) for r in records]
    for _, body in bodies:
        if isinstance(body, GenesisBody | KeysBody):
            for sealed in body.shares.values():
                with contextlib.suppress(DecryptError):
                    keys.add(open_sealed(key, sealed))
    grew = True
    while grew:  # follow history links with whatever keys are known
        grew = False
        for rec, body in bodies:
            if isinstance(body, KeysBody) and body.history is not None:
                for k in list(keys):
                    try:
                        linked = msgpack.unpackb(decrypt(
                            k, body.history, epoch_ad(HISTORY_AD, rec.author, body.number)))
                    except DecryptError:
                        continue
                    new = set(linked.values()) - keys
                    keys |= new
                    grew |= bool(new)
    opened = set()
    for rec, body in bodies:
        if isinstance(body, SealedBody):
            for k in keys:
                try:
                    decrypt(k, body.blob, post_ad(rec.space_id, rec.author, body.epoch))
                except DecryptError:
                    continue
                opened.add(rec.id)
    return keys, opened


def sealed_ids(records: Iterable[Record]) -> set[bytes]:
    return {r.id for r in records if r.kind == "sealed"}


def busy_crew(w: World) -> bytes:
    """A crew with joins, posts, a leave and rotations."""
    space = w.found(ADA, name="Moonlit Crew")
    w.admit(ADA, BO, space)
    w.admit(BO, CY, space)
    w.post(ADA, space, Profile("Ada", "gardeners of Tuesday"))
    first = w.post(BO, space, CheckIn("feeling wobbly", 2, {"belonging": 4}, ask="a walk?"))
    w.post(CY, space, Reply(first.id, "wobbly too"))
    w.leave(CY, space)
    w.post(ADA, space, CheckIn("wobbly but here", 3))
    return space


def test_a_non_member_holding_every_record_decrypts_nothing() -> None:
    w = World()
    space = busy_crew(w)
    records = w.of(space)
    # eve is a member elsewhere: the keys she holds there do not help here
    elsewhere = w.found(EVE, name="Eve's own")
    w.post(EVE, elsewhere, CheckIn("hello", 4))
    her_keys = spaces.unlock(w.state(elsewhere), EVE).epoch_keys.values()
    keys, opened = try_everything(records, EVE, her_keys)
    assert opened == set()
    assert keys == set(her_keys)  # no share, no link opened
    state = w.state(space)
    keyring = spaces.unlock(state, EVE)
    assert keyring.epoch_keys == {}
    assert keyring.meta_key is None
    assert spaces.open_meta(state, keyring) is None
    assert spaces.open_posts(state, keyring).posts == ()
    # and nothing readable sits in the bytes
    everything = b"".join(r.raw for r in records)
    for words in SECRET_WORDS:
        assert words.encode() not in everything
    # a member, by the same brute force, does read every post (so the attacker test can succeed)
    _, by_member = try_everything(records, ADA)
    assert by_member == sealed_ids(records)


def test_a_congregations_posts_are_sealed_to_its_members_the_same_way() -> None:
    w = World()
    hall = w.found(ADA, SpaceKind.CONGREGATION, name="Hall of gardeners of Tuesday")
    w.admit(ADA, BO, hall)
    w.admit(BO, CY, hall)
    w.post(ADA, hall, Ask("a venue", "wobbly chairs welcome"))
    w.post(BO, hall, Gathering("Moonlit Crew meet", 1_800_000_000_000, "the library"))
    w.leave(CY, hall)
    after = w.post(BO, hall, LookingForCrew(True, "gardeners of Tuesday, evenings"))
    records = w.of(hall)
    everything = b"".join(r.raw for r in records)
    for words in SECRET_WORDS:
        assert words.encode() not in everything
    _, by_outsider = try_everything(records, EVE)
    assert by_outsider == set()
    _, by_member = try_everything(records, ADA)
    assert by_member == sealed_ids(records)
    _, by_leaver = try_everything(records, CY)
    assert after.id not in by_leaver  # the departure rotated the keys before bo wrote
    assert by_leaver  # while what cy was given still opens (the attacker works)


def test_a_removed_member_decrypts_nothing_of_later_epochs() -> None:
    w = World()
    space = w.found(ADA)
    for friend in (BO, CY, DAN):
        w.admit(ADA, friend, space)
    before = {w.post(DAN, space, CheckIn("still here", 3)).id,
              w.post(ADA, space, CheckIn("before", 4)).id}
    w.consent(BO, space, w.propose(ADA, space, DAN))  # ada + bo: 2 of the 3 others
    removal_point = len(w.records)
    after = {w.post(ADA, space, CheckIn("the crew without dan", 3)).id,
             w.post(BO, space, Reply(next(iter(before)), "moving on")).id}
    w.admit(BO, EVE, space)  # another rotation later still
    after.add(w.post(EVE, space, CheckIn("new here", 5)).id)
    state = w.state(space)
    assert state.members[pk(DAN)].status is spaces.MemberStatus.REMOVED
    later_epochs = {r.id for r in w.records[removal_point:] if r.kind == "keys"}
    assert later_epochs
    keys, opened = try_everything(w.of(space), DAN)
    assert opened == before  # everything he could read before, nothing after
    assert not opened & after
    held = spaces.unlock(state, DAN).epoch_keys
    assert not set(held) & later_epochs
    for rid in later_epochs:
        body = parse_body("keys", state.records[rid].body)
        assert isinstance(body, KeysBody)
        assert pk(DAN) not in body.shares
        for sealed in body.shares.values():  # no share opens with his key
            try:
                open_sealed(DAN, sealed)
            except DecryptError:
                continue
            raise AssertionError("a later share opened for the removed member")
    assert len(keys) == len(held)


def test_a_joiner_reads_history_only_if_the_space_allows_it() -> None:
    for history in (True, False):
        w = World()
        space = w.found(ADA, history=history)
        w.admit(ADA, BO, space)
        old = w.post(BO, space, CheckIn("before cy", 3)).id
        w.admit(ADA, CY, space)
        new = w.post(BO, space, CheckIn("with cy", 4)).id
        state = w.state(space)
        opened = spaces.open_posts(state, spaces.unlock(state, CY))
        readable = {p.record_id for p in opened.posts}
        _, tried = try_everything(w.of(space), CY)
        if history:
            assert readable == tried == {old, new}
        else:
            assert readable == tried == {new}
            assert opened.locked == {old}
        # settings are readable either way
        meta = spaces.open_meta(state, spaces.unlock(state, CY))
        assert meta is not None
        assert meta.name == "Crew"


def test_a_ciphertext_moved_to_another_author_does_not_open() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    original = w.post(ADA, space, CheckIn("mine", 3))
    copied = w.sign(BO, space, spaces.Draft("sealed", original.body))  # bo re-signs ada's body
    state = w.state(space)
    assert state.status(copied.id) == spaces.state.ACCEPTED  # the envelope is fine...
    opened = spaces.open_posts(state, spaces.unlock(state, ADA))
    refusal = opened.refused[copied.id]  # ...but members cannot open it as bo's
    assert refusal.reason is Reason.UNREADABLE
    assert [p.record_id for p in opened.posts] == [original.id]


def test_a_garbage_body_under_a_real_epoch_is_unreadable_for_every_member() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    epoch = w.state(space).current_epoch_id
    assert epoch is not None
    junk = w.sign(BO, space, draft(SealedBody(epoch, w.rng(80))))
    state = w.state(space)
    for member in (ADA, BO):
        opened = spaces.open_posts(state, spaces.unlock(state, member))
        assert opened.refused[junk.id].reason is Reason.UNREADABLE
