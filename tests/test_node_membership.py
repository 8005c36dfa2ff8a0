"""The node's view of membership (:mod:`meshcrew.node.membership`) against the fold.

Gossip validation counts a valid join before the fold has it; these tests check that the count
ends as soon as the fold has seen the join, and that validation admits only joins the fold would
apply now. Real members on real replicas (``test_service_support``), no network: the
multi-process race is ``test_node_processes``' loser-of-a-race test.
"""

from __future__ import annotations

import pytest

from meshcrew.net import Verdict
from meshcrew.node.membership import EARLY_JOIN_MS, GossipJudge, Membership, changes_membership
from meshcrew.reasons import Reason
from meshcrew.records import Record, sign_record
from meshcrew.service import Member
from meshcrew.spaces import decode_invite_code, join_space
from meshcrew.spaces.bodies import JoinBody, draft
from meshcrew.spaces.invites import prove_invite
from meshcrew.spaces.transit import TransitForged, TransitUnknown
from test_service_support import WEEK, Town, crew_of, send, sync


def signed_join(joiner: Member, code: str, *, seq: int = 1, prev: bytes | None = None) -> Record:
    """``joiner``'s join with ``code``, signed but not stored anywhere."""
    invite = decode_invite_code(code)
    made = join_space(invite, joiner.identity.signing_key)
    return sign_record(joiner.identity.signing_key, kind=made.kind, space=invite.space_id,
                       seq=seq, prev=prev, ts=joiner.now(), body=made.body)


def refusal(member: Member, space: bytes, record: Record) -> Reason | None:
    status = member.view(space).state.status(record.id)
    assert status is not None
    return status.reason


@pytest.mark.parametrize("together", [True, False], ids=["together", "loser-first"])
def test_the_loser_of_a_race_for_an_invite_stops_counting_once_the_fold_has_both(
        town: Town, together: bool) -> None:
    ada, jo, kit = town.person("Ada"), town.person("Jo"), town.person("Kit")
    space = ada.create_space("Moon")
    code = ada.invite(space, expires_ms=ada.now() + WEEK)  # one use
    membership = Membership(ada)
    winner, loser = sorted([signed_join(jo, code), signed_join(kit, code)], key=lambda r: r.id)
    for join in (loser, winner):  # both look valid to a node that has neither
        assert membership.valid_join(join)
        membership.note_early_join(join)
        assert membership.is_member(space, join.author)
    batches = [[loser.raw, winner.raw]] if together else [[loser.raw], [winner.raw]]
    for batch in batches:
        ada.ingest(batch, sender="gossip")
        membership.changed(space)  # what the node does for every stored record but a post
    assert membership.is_member(space, winner.author)
    assert not membership.is_member(space, loser.author)
    assert refusal(ada, space, loser) is Reason.INVITE_EXHAUSTED
    assert not membership.valid_join(loser)  # and its join, gossiped again, is no longer valid
    assert membership.valid_join(winner)


def test_an_early_join_that_never_reaches_the_fold_stops_counting(town: Town) -> None:
    ada, jo = town.person("Ada"), town.person("Jo")
    space = ada.create_space("Moon")
    join = signed_join(jo, ada.invite(space, expires_ms=ada.now() + WEEK))
    membership = Membership(ada)
    membership.note_early_join(join)
    assert membership.is_member(space, jo.me)
    town.clock.advance(EARLY_JOIN_MS)  # dropped from a full queue, say: sync brings it later
    assert not membership.is_member(space, jo.me)
    ada.ingest([join.raw], sender="sync")
    membership.changed(space)
    assert membership.is_member(space, jo.me)


def test_a_member_removed_by_consent_cannot_rejoin_through_gossip(town: Town) -> None:
    space, (ada, bob, cy, dee) = crew_of(town, "Ada", "Bob", "Cy", "Dee")
    code = bob.invite(space, uses=2, expires_ms=bob.now() + WEEK)  # a code Dee got hold of
    proposal = ada.propose_removal(space, dee.me)
    sync(space, ada, bob, cy, dee)
    bob.consent(space, proposal)
    sync(space, ada, bob, cy, dee)
    assert [m.status for m in ada.members(space) if m.name == "Dee"] == ["removed"]
    cy.leave(space)
    sync(space, ada, bob, cy)
    membership = Membership(ada)
    head = dee.replica.frontier(space)[dee.me]
    rejoin = signed_join(dee, code, seq=head.seq + 1, prev=head.id)
    assert not membership.valid_join(rejoin)
    cy_head = cy.replica.frontier(space)[cy.me]
    comeback = signed_join(cy, code, seq=cy_head.seq + 1, prev=cy_head.id)
    assert membership.valid_join(comeback)  # who left may come back with an invite
    ada.ingest([rejoin.raw, comeback.raw], sender="file")
    assert refusal(ada, space, rejoin) is Reason.REMOVED_MEMBER
    assert refusal(ada, space, comeback) is None


def test_a_join_to_a_full_space_is_not_taken_early(town: Town) -> None:
    ada, bob, cy = town.person("Ada"), town.person("Bob"), town.person("Cy")
    space = ada.create_space("Pair", kind="dyad")
    code = ada.invite(space, uses=2, expires_ms=ada.now() + WEEK)
    send(ada, bob, space)
    bob.join(code)
    ada.ingest(bob.export(space), sender="bob")
    send(ada, cy, space)
    join = signed_join(cy, code)
    membership = Membership(ada)
    assert not membership.valid_join(join)
    # Sync may still bring it: then the fold lets in whichever join comes first in canonical
    # order (the lower id), and the node's membership follows.
    ada.ingest([join.raw], sender="sync")
    membership.changed(space)
    state = ada.view(space).state
    joins = [r for r in state.records.values() if r.kind == "join"]
    assert sorted(refusal(ada, space, j) is Reason.SPACE_FULL for j in joins) == [False, True]
    for key in (bob.me, cy.me):
        assert membership.is_member(space, key) == state.is_member(key)


def test_a_join_the_fold_cannot_apply_yet_is_not_taken_early(town: Town) -> None:
    ada, jo = town.person("Ada"), town.person("Jo")
    space = ada.create_space("Moon")
    code = ada.invite(space, expires_ms=ada.now() + WEEK)
    membership = Membership(ada)
    # A join that claims a predecessor nobody has would wait in the replica forever.
    assert not membership.valid_join(signed_join(jo, code, seq=2, prev=b"p" * 32))
    assert membership.valid_join(signed_join(jo, code))


def test_validation_follows_the_invite_rules(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    jo = town.person("Jo")
    membership = Membership(ada)
    code = ada.invite(space, expires_ms=ada.now() + WEEK)
    good = signed_join(jo, code)
    assert membership.valid_join(good)
    wrong_space = bob.create_space("Other")
    assert not Membership(bob).valid_join(sign_record(
        jo.identity.signing_key, kind=good.kind, space=wrong_space, seq=1, prev=None,
        ts=good.ts, body=good.body))  # an invite of another space
    town.clock.advance(2 * WEEK)
    assert not membership.valid_join(signed_join(jo, code))  # signed after the expiry
    assert membership.valid_join(good)  # signed before it: the fold reads no clock
    assert not membership.valid_join(signed_join(bob, ada.invite(
        space, expires_ms=ada.now() + WEEK)))  # a member already


def test_the_gossip_judge_accepts_members_and_joiners_and_blames_only_strangers(
        town: Town) -> None:
    """docs/node.md's validator rules, on a real replica: what cannot be judged yet is ignored
    when a member published it and rejected (penalised) from anyone else."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    other_space = ada.create_space("Sun")
    jo, mallory = town.person("Jo"), town.person("Mallory")
    membership = Membership(ada)
    judge = GossipJudge(membership, ada.now)
    by_bo, by_mallory = bo.identity.peer_id, mallory.identity.peer_id
    post = bo.replica.get(bo.checkin(space, text="here"))
    assert post is not None
    assert judge(space, post.raw, by_mallory) is Verdict.ACCEPT  # a member's record
    assert judge(other_space, post.raw, by_bo) is Verdict.REJECT  # on another space's topic
    assert judge(space, b"not a record", by_bo) is Verdict.REJECT
    join = signed_join(jo, ada.invite(space, expires_ms=ada.now() + WEEK))
    assert judge(space, join.raw, by_mallory) is Verdict.ACCEPT  # a join this node would admit
    assert membership.is_member(space, jo.me)  # counted before the fold has it
    outsider = sign_record(mallory.identity.signing_key, kind="sealed", space=space, seq=1,
                           prev=None, ts=ada.now(), body=b"x")
    ahead = sign_record(bo.identity.signing_key, kind="sealed", space=space, seq=9,
                        prev=bytes(32), ts=ada.now() + 3_600_000, body=b"x")
    for record in (outsider, ahead):  # not the sender's fault if a member published it
        assert judge(space, record.raw, by_bo) is Verdict.IGNORE
        assert judge(space, record.raw, by_mallory) is Verdict.REJECT
        assert judge(space, record.raw, "not a peer id") is Verdict.REJECT
    assert judge.verdicts == {Verdict.ACCEPT: 2, Verdict.IGNORE: 2, Verdict.REJECT: 6}
    assert (judge.judged, judge.accepted) == (10, 2)


def test_a_post_sent_before_its_author_was_removed_costs_its_forwarder_nothing(
        town: Town) -> None:
    """Dee posts; a node that has not folded her removal yet passes the post on to Ada, who has:
    Ada ignores it. Rejected, it cost the forwarder 25 points (four ban it), though the forwarder
    and Dee both acted in good faith: Dee was a member when she posted, and validity is judged
    at each hop by that hop's view."""
    space, (ada, bob, cy, dee) = crew_of(town, "Ada", "Bob", "Cy", "Dee")
    post = dee.replica.get(dee.checkin(space, text="last words"))  # reaches nobody yet
    assert post is not None
    proposal = ada.propose_removal(space, dee.me)
    sync(space, ada, bob, cy)
    bob.consent(space, proposal)
    sync(space, ada, bob, cy)
    assert [m.status for m in ada.members(space) if m.name == "Dee"] == ["removed"]
    membership = Membership(ada)
    judge = GossipJudge(membership, ada.now)
    assert judge(space, post.raw, dee.identity.peer_id) is Verdict.IGNORE
    assert judge(space, post.raw, cy.identity.peer_id) is Verdict.IGNORE
    goodbye = cy.replica.get(cy.checkin(space, text="see you"))
    assert goodbye is not None
    cy.leave(space)
    sync(space, ada, bob, cy)
    membership.changed(space)  # as the node does when a membership record arrives
    assert judge(space, goodbye.raw, cy.identity.peer_id) is Verdict.IGNORE  # left since
    stranger = town.person("Mallory")
    outsider = sign_record(stranger.identity.signing_key, kind="sealed", space=space, seq=1,
                           prev=None, ts=ada.now(), body=b"x")
    assert judge(space, outsider.raw, stranger.identity.peer_id) is Verdict.REJECT  # never was


def test_only_posts_leave_membership_unchanged() -> None:
    assert not changes_membership("sealed")
    for kind in ("join", "keys", "leave", "remove", "consent", "invite", "revoke", "carrier"):
        assert changes_membership(kind)


def test_the_gossip_judge_opens_transit_before_judging(town: Town) -> None:
    """A message sealed in transit is judged by what it opens to; one this node cannot open
    is ignored (nothing is proven: sync brings the record); a forged one is rejected."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    post = bo.replica.get(bo.checkin(space, text="here"))
    assert post is not None
    opened: list[tuple[bytes, bytes]] = []

    def open_transit(space_id: bytes, data: bytes) -> bytes:
        opened.append((space_id, data))
        if data == b"unknown":
            raise TransitUnknown
        if data == b"forged":
            raise TransitForged
        return data.removeprefix(b"sealed:")

    judge = GossipJudge(Membership(ada), ada.now, open_transit=open_transit)
    by_bo, by_stranger = bo.identity.peer_id, town.person("Mallory").identity.peer_id
    assert judge(space, b"sealed:" + post.raw, by_stranger) is Verdict.ACCEPT
    assert opened == [(space, b"sealed:" + post.raw)]
    assert judge(space, b"unknown", by_bo) is Verdict.IGNORE
    assert judge(space, b"forged", by_bo) is Verdict.REJECT


def test_the_fold_decides_as_soon_as_it_has_the_join_even_before_a_refold(town: Town) -> None:
    ada, jo, kit = town.person("Ada"), town.person("Jo"), town.person("Kit")
    space = ada.create_space("Moon")
    code = ada.invite(space, expires_ms=ada.now() + WEEK)  # one use
    membership = Membership(ada)
    assert membership.is_member(space, ada.me)  # the members are now cached
    winner, loser = sorted([signed_join(jo, code), signed_join(kit, code)], key=lambda r: r.id)
    for join in (loser, winner):
        membership.note_early_join(join)
    ada.ingest([loser.raw, winner.raw], sender="gossip")  # no membership.changed() yet
    assert not membership.is_member(space, loser.author)
    assert membership.is_member(space, winner.author)


def test_my_spaces_are_those_i_am_a_member_of(town: Town) -> None:
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    sun = ada.create_space("Sun")
    send(ada, bo, sun)  # bo holds the Sun's records but is no member of it
    mine = Membership(bo)
    assert mine.my_spaces() == [space]
    assert sorted(Membership(ada).my_spaces()) == sorted([space, sun])
    mine.changed(space)
    assert mine.my_spaces() == [space]
    assert not mine.is_member(bytes(32), bo.me)  # a space the replica does not hold
    assert mine.active(bytes(32)) == frozenset()


def test_a_join_the_fold_would_refuse_is_not_taken_early(town: Town) -> None:
    """A join whose body does not parse, or that names another key than its signer (someone
    holding the invite's secret putting a third key in the space), or a join to a space this
    node does not hold: gossip does not count it, and the fold refuses the first two."""
    ada, jo, mallory = town.person("Ada"), town.person("Jo"), town.person("Mallory")
    space = ada.create_space("Moon")
    code = ada.invite(space, uses=3, expires_ms=ada.now() + WEEK)
    invite = decode_invite_code(code)
    membership = Membership(ada)
    judge = GossipJudge(membership, ada.now)
    stranger = town.person("Sam").identity.peer_id

    def signed(body: bytes) -> Record:
        return sign_record(mallory.identity.signing_key, kind="join", space=space, seq=1,
                           prev=None, ts=mallory.now(), body=body)

    garbled = signed(b"\x93not a join body")
    proof = prove_invite(invite.secret, space, mallory.me)  # a valid proof, for her own key
    for_jo = signed(draft(JoinBody(invite.invite_id, jo.me, proof)).body)
    bob = town.person("Bob")
    sun = bob.create_space("Sun")  # a space Ada's node has never heard of
    elsewhere = signed_join(jo, bob.invite(sun, expires_ms=bob.now() + WEEK))
    assert sun not in ada.replica.spaces()
    for join in (garbled, for_jo, elsewhere):
        assert not membership.valid_join(join)
        assert judge(join.space_id, join.raw, stranger) is Verdict.REJECT
        assert not membership.is_member(join.space_id, join.author)
    # Her own join, with the same proof, would count: the refusal is the body's fault.
    assert membership.valid_join(signed(draft(JoinBody(invite.invite_id, mallory.me, proof)).body))
    ada.ingest([for_jo.raw], sender="gossip")
    assert refusal(ada, space, for_jo) is Reason.JOIN_FORGED
    assert not ada.view(space).state.is_member(mallory.me)
    assert not ada.view(space).state.is_member(jo.me)


def test_the_gossip_judge_hands_on_what_it_accepted_once_and_keeps_few(town: Town) -> None:
    """The node takes an accepted message's record from the judge, opened and verified, rather
    than opening and verifying it again; only accepted ones, each once, the newest few."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    judge = GossipJudge(Membership(ada), ada.now,
                        open_transit=lambda space_id, data: data.removeprefix(b"sealed:"))
    judge.KEEP_OPENED = 2
    posts = [bo.replica.get(bo.checkin(space, text=f"post {n}")) for n in range(3)]
    sealed = [b"sealed:" + p.raw for p in posts if p is not None]
    by_bo = bo.identity.peer_id
    assert judge(space, b"sealed:not a record", by_bo) is Verdict.REJECT
    assert judge.opened(space, b"sealed:not a record") is None
    for data in sealed:
        assert judge(space, data, by_bo) is Verdict.ACCEPT
    assert judge.opened(space, sealed[0]) is None  # the oldest made room
    for data, post in zip(sealed[1:], posts[1:], strict=True):
        record = judge.opened(space, data)
        assert record is not None
        assert post is not None
        assert (record.id, record.raw, record.author) == (post.id, post.raw, bo.me)
        assert judge.opened(space, data) is None  # handed on once
    assert judge.opened(ada.create_space("Sun"), sealed[2]) is None  # another topic's
