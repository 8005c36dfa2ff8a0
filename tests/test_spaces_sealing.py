"""What a member reads of a space (:mod:`meshcrew.spaces.sealing`), checked whole: why a post
is refused, which posts are locked or expired, which word of a member is the latest, and the
sentences a person reads when a post cannot be written. Pure: folds of records from
``spaces_world``, no replica.

Mutation testing (``scripts/mutants``) found these checked only by reason, or not at all.
"""

from __future__ import annotations

import random
from dataclasses import replace

import msgpack
import pytest
from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.crypto import encrypt, open_sealed, seal_to_member
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import Record, decode_husk, encode_husk, sign_record
from meshcrew.spaces import CheckIn, LookingForCrew, Profile, SpaceKind
from meshcrew.spaces.bodies import KeysBody, SealedBody, draft, parse_body
from meshcrew.spaces.posts import encode_post
from meshcrew.spaces.retention import husk_stub
from meshcrew.spaces.sealing import HISTORY_AD, OpenedPost, epoch_ad, newer, post_ad
from meshcrew.spaces.state import Outcome, Status
from spaces_world import World, person, pk

ADA, BO, CY = (person(n) for n in ("ada", "bo", "cy"))


def crew(w: World) -> bytes:
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    return space


def test_a_refused_post_says_why_in_its_status() -> None:
    """Every member's app shows the same refusal for a post: its outcome, reason and detail."""
    w = World()
    space = crew(w)
    state = w.state(space)
    epoch = state.current_epoch_id
    assert epoch is not None
    key = spaces.unlock(state, BO).epoch_keys[epoch]
    original = w.post(ADA, space, CheckIn("mine", 3))
    moved = w.sign(BO, space, spaces.Draft("sealed", original.body))  # not bo's to sign
    off_kind = w.sign(BO, space, draft(SealedBody(epoch, encrypt(
        key, encode_post(LookingForCrew(True, "evenings")),
        post_ad(space, pk(BO), epoch), w.rng))))  # a congregation's post, in a crew
    not_a_post = w.sign(BO, space, draft(SealedBody(epoch, encrypt(
        key, b"\xc1", post_ad(space, pk(BO), epoch), w.rng))))
    state = w.state(space)
    opened = spaces.open_posts(state, spaces.unlock(state, ADA))
    assert opened.refused[moved.id] == Status(
        Outcome.REJECTED, Reason.UNREADABLE,
        "The body does not open with this key (wrong epoch, wrong space, or altered).")
    assert opened.refused[off_kind.id] == Status(
        Outcome.REJECTED, Reason.BAD_BODY, "a looking_for_crew does not belong in a crew")
    refusal = opened.refused[not_a_post.id]
    assert refusal.outcome is Outcome.REJECTED
    assert refusal.reason is Reason.BAD_BODY
    assert refusal.detail
    assert [p.record_id for p in opened.posts] == [original.id]


def test_an_opened_post_carries_its_record_facts() -> None:
    w = World()
    space = crew(w)
    record = w.post(BO, space, CheckIn("here", 4))
    state = w.state(space)
    body = parse_body(record.kind, record.body)
    assert isinstance(body, SealedBody)
    for reader in (ADA, BO):
        (post,) = spaces.open_posts(state, spaces.unlock(state, reader)).posts
        assert post == OpenedPost(record.id, pk(BO), record.seq, record.ts, body.epoch,
                                  CheckIn("here", 4), pk(BO))
        assert post.signer == pk(BO)


def test_expired_posts_are_told_apart_from_locked_ones() -> None:
    """A husk (its post expired and was deleted) is listed as expired, a post of an epoch the
    reader holds no key for as locked; neither is refused or shown."""
    w = World()
    space = w.found(ADA, history=False)
    before = w.post(ADA, space, CheckIn("before you came", 2))
    gone = w.post(ADA, space, CheckIn("gone soon", 2))
    w.admit(ADA, BO, space)
    after = w.post(ADA, space, CheckIn("after", 2))
    body = parse_body(gone.kind, gone.body)
    assert isinstance(body, SealedBody)
    husk = decode_husk(encode_husk(gone, husk_stub(body)))
    records = [husk if r.id == gone.id else r for r in w.of(space)]
    state = w.state(space, records)
    opened = spaces.open_posts(state, spaces.unlock(state, BO))
    assert opened.expired == {gone.id}
    assert opened.locked == {before.id}
    assert [p.record_id for p in opened.posts] == [after.id]
    assert not opened.refused
    assert opened.post(after.id) is opened.posts[0]
    assert opened.post(before.id) is None


def _opened(record_id: bytes, seq: int, ts: int, signer: bytes) -> OpenedPost:
    return OpenedPost(record_id, pk(ADA), seq, ts, b"e" * 32, Profile("Ada", ""), signer)


def test_a_members_latest_word_is_the_higher_seq_of_one_chain() -> None:
    """Within one key's chain the seq decides, whatever the clocks said; a post is never newer
    than itself or than a post of the same seq (a fork's twin)."""
    first = _opened(b"a" * 32, 5, 2_000, pk(ADA))
    later = _opened(b"b" * 32, 6, 1_000, pk(ADA))  # a slow clock: seq still decides
    twin = _opened(b"c" * 32, 5, 3_000, pk(ADA))
    assert newer(later, first)
    assert not newer(first, later)
    assert not newer(first, first)
    assert not newer(twin, first)
    assert not newer(first, twin)


def test_between_two_keys_of_a_member_the_later_signed_time_decides() -> None:
    phone, laptop = pk(BO), pk(CY)  # two signing keys of one member: seqs do not compare
    on_phone = _opened(b"a" * 32, 90, 1_000, phone)
    on_laptop = _opened(b"b" * 32, 2, 2_000, laptop)
    assert newer(on_laptop, on_phone)
    assert not newer(on_phone, on_laptop)
    same_time = _opened(b"c" * 32, 3, 2_000, phone)
    assert newer(same_time, on_laptop)  # then the seq
    assert not newer(on_laptop, same_time)
    assert not newer(on_laptop, _opened(b"b" * 32, 2, 2_000, phone))  # equal in all: not newer


def test_seal_post_refusals_are_sentences() -> None:
    w = World()
    space = crew(w)
    state = w.state(space)
    with pytest.raises(SpaceError) as outsider:
        spaces.seal_post(state, CY, CheckIn("let me in", 3), w.rng)
    assert str(outsider.value) == "You are not a member of this space."
    with pytest.raises(SpaceError) as off_kind:
        spaces.seal_post(state, ADA, LookingForCrew(True, "evenings"), w.rng)
    assert str(off_kind.value) == "A looking for crew cannot be posted in a crew."
    w.leave(BO, space)
    with pytest.raises(SpaceError) as stale:
        spaces.seal_post(w.state(space), ADA, CheckIn("alone now", 3), w.rng)
    assert str(stale.value) == ("The membership changed since the last key rotation; rotate "
                                "the keys before writing.")


def test_epoch_associated_data_is_the_documented_layout() -> None:
    """docs/protocol.md: prefix, the epoch author's key, the epoch number as 8 bytes big-endian.
    Every release must build the same bytes or the keys of older epochs do not open."""
    assert epoch_ad(b"p\x00", b"k" * 32, 258) == b"p\x00" + b"k" * 32 + bytes(6) + b"\x01\x02"


def test_writable_epoch_is_the_current_one_unless_the_author_wrote_under_a_newer_one() -> None:
    w = World()
    space = crew(w)
    state = w.state(space)
    current = state.current_epoch
    assert current is not None
    assert current.number > 0
    assert spaces.writable_epoch(state, pk(ADA)) == current
    assert spaces.writable_epoch(state, pk(CY)) is None  # no share for an outsider
    assert state.kind is SpaceKind.CREW
    alone = w.found(CY)  # a founder writes under the genesis epoch, no rotation first
    fresh = w.state(alone)
    assert spaces.writable_epoch(fresh, pk(CY)) == fresh.epochs[alone]
    assert fresh.epochs[alone].number == 0


def _rotation_by(w: World, key: SigningKey, space: bytes, *,
                 shares: dict[bytes, bytes] | None = None,
                 history: dict[bytes, bytes] | None = None) -> Record:
    """``key``'s key rotation, with some members' shares or its history link replaced (what a
    dishonest member can sign: the fold cannot look inside sealed shares or links)."""
    made = parse_body("keys", spaces.rotate_keys(w.state(space), key, w.rng).body)
    assert isinstance(made, KeysBody)
    new = open_sealed(key, made.shares[pk(key)])
    if history is not None:
        link = encrypt(new, msgpack.packb(history, use_bin_type=True),
                       epoch_ad(HISTORY_AD, pk(key), made.number), w.rng)
        made = replace(made, history=link)
    if shares is not None:
        made = replace(made, shares={**made.shares, **shares})
    return w.sign(key, space, draft(made))


def test_a_share_a_member_cannot_open_hides_only_its_own_epoch() -> None:
    """A rotation gives Ada a share sealed to someone else: Ada still opens the later epochs'
    shares (and gets that epoch's key from the next rotation's history link), and reads the
    posts written after it."""
    w = World()
    space = crew(w)
    bad = _rotation_by(w, BO, space, shares={pk(ADA): seal_to_member(pk(CY), bytes(32), w.rng)})
    good = w.rotate(BO, space)  # the next epoch, after the bad one
    later = w.post(BO, space, CheckIn("after the mess", 3))
    state = w.state(space)
    assert state.status(later.id) == spaces.state.ACCEPTED
    assert list(state.epochs).index(bad.id) < list(state.epochs).index(good.id)
    keyring = spaces.unlock(state, ADA)
    assert set(keyring.epoch_keys) == set(state.epochs)
    assert [p.record_id for p in spaces.open_posts(state, keyring).posts] == [later.id]


def test_a_forged_history_link_gives_no_key() -> None:
    """A rotation's history link that names a wrong key for an earlier epoch, and an epoch
    that does not exist: a joiner who follows it takes neither, so the earlier posts stay
    locked to them (not refused as unreadable) and nothing breaks."""
    w = World()
    space = crew(w)
    early = w.post(ADA, space, CheckIn("before the forgery", 3))
    first = w.state(space).current_epoch_id
    assert first is not None
    _rotation_by(w, BO, space, history={first: bytes(32), b"g" * 32: bytes(32)})
    w.admit(ADA, CY, space)
    late = w.post(ADA, space, CheckIn("for cy too", 3))
    state = w.state(space)
    keyring = spaces.unlock(state, CY)
    assert first not in keyring.epoch_keys
    assert keyring.meta_key is not None
    opened = spaces.open_posts(state, keyring)
    assert opened.locked == {early.id}
    assert not opened.refused
    assert [p.record_id for p in opened.posts] == [late.id]


def test_posts_that_arrive_before_their_space_open_to_nothing() -> None:
    """A member's replica may hold a space's posts before its genesis (sync brings them in any
    order): there is nothing to open yet, and nothing to refuse."""
    w = World()
    space = crew(w)
    post = w.post(ADA, space, CheckIn("early", 3))
    state = w.state(space, [post])
    assert state.kind is None
    keyring = spaces.unlock(state, ADA)
    assert spaces.open_meta(state, keyring) is None
    opened = spaces.open_posts(state, keyring)
    assert (opened.posts, dict(opened.refused), opened.locked) == ((), {}, frozenset())


def _mixed_space(w: World) -> tuple[bytes, list[Record], Record]:
    """A space without history where Bo joins late: posts locked to him, a post expired (held
    as a husk), one refused (another author's ciphertext), an invite last, and a fork by Bo
    that takes his last two posts out of the order."""
    space = w.found(ADA, history=False)
    w.post(ADA, space, CheckIn("before bo", 2))
    w.admit(ADA, BO, space)
    gone = w.post(ADA, space, CheckIn("expires", 2))
    mine = w.post(ADA, space, CheckIn("mine", 3))
    w.sign(BO, space, spaces.Draft("sealed", mine.body))  # not bo's: unreadable
    profile = w.post(BO, space, Profile("Bo", "here"))
    w.post(BO, space, CheckIn("last word", 4))
    w.post(ADA, space, CheckIn("after", 1))
    w.invite(ADA, space)
    body = parse_body(gone.kind, gone.body)
    assert isinstance(body, SealedBody)
    husk = decode_husk(encode_husk(gone, husk_stub(body)))
    twin = sign_record(BO, kind="sealed", space=space, seq=profile.seq, prev=profile.prev,
                       ts=w.tick(), body=profile.body)  # a second record at the same seq
    return space, [husk if r.id == gone.id else r for r in w.of(space)], twin


@pytest.mark.parametrize("seed", range(4))
def test_opening_more_answers_as_opening_everything_whatever_arrives(seed: int) -> None:
    """Records arrive a few at a time in any order; after each arrival, opening only what is
    new (``open_more``) gives what opening every post gives: the same posts in the same order,
    the same refusals, locked and expired posts, and the same answers by id and by kind. The
    fork at the end shortens the order, which ``open_more`` must go over whole."""
    w = World(seed)
    space, held, twin = _mixed_space(w)
    records = [*held, twin]
    rng = random.Random(seed)
    rng.shuffle(records)
    full = w.state(space, records)
    keyring = spaces.unlock(full, BO)
    opened = None
    shortened = False
    at = 0
    while at < len(records):
        at += rng.randint(1, 4)
        state = w.state(space, records[:at])
        fresh = spaces.open_posts(state, keyring)
        if opened is not None:
            shortened |= len(state.order) < len(opened.state.order)
            more = spaces.open_more(opened, state, keyring)
            assert more == fresh
            for post in fresh.posts:
                assert more.post(post.record_id) == post
            for kind in {p.kind for p in fresh.posts} | {p.kind for p in opened.posts}:
                assert more.of_kind(kind) == fresh.of_kind(kind)
        opened = fresh if opened is None else spaces.open_more(opened, state, keyring)
    assert opened is not None
    assert opened.locked
    assert opened.expired
    assert opened.refused
    assert opened.posts
    # The twin last, with the invite: the fork takes Bo's last two posts out, and the order
    # is shorter than before.
    before = spaces.open_posts(w.state(space, held[:-1]), keyring)
    after = w.state(space, [*held, twin])
    assert len(after.order) < len(before.state.order)
    assert spaces.open_more(before, after, keyring) == spaces.open_posts(after, keyring)
