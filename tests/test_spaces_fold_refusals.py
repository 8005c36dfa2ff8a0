"""The refusals the fold makes before ordering (``spaces.fold._parse_all``), each with the
reason and detail every member's app shows: a space begun by another kind than a genesis, a
genesis posted inside a space, a body that does not parse, and an author's fork. Pure.

Mutation testing (``scripts/mutants``) found these statuses unchecked beyond "refused".
"""

from __future__ import annotations

import pytest

from meshcrew.reasons import Reason
from meshcrew.records import NEW_SPACE, RecordError, sign_record
from meshcrew.spaces import Draft
from meshcrew.spaces.bodies import parse_body
from meshcrew.spaces.state import Outcome, Status
from spaces_world import World, person

ADA, BO = person("ada"), person("bo")


def test_a_space_begun_by_another_kind_than_a_genesis_is_refused() -> None:
    w = World()
    space = w.found(ADA)
    genesis = w.of(space)[0]
    begun = sign_record(BO, kind="leave", space=NEW_SPACE, seq=1, prev=None, ts=w.tick(),
                        body=b"\x80")
    state = w.state(begun.id, [begun])
    assert state.status(begun.id) == Status(Outcome.REJECTED, Reason.BAD_BODY,
                                            "a space starts with a genesis record")
    posted = sign_record(BO, kind="genesis", space=space, seq=1, prev=None, ts=w.tick(),
                         body=genesis.body)
    state = w.state(space, [*w.of(space), posted])
    assert state.status(posted.id) == Status(Outcome.REJECTED, Reason.NOT_ALLOWED,
                                             "a genesis cannot be posted in a space")
    assert state.status(genesis.id) is not None
    assert state.status(genesis.id).accepted


def test_a_body_that_does_not_parse_is_refused_with_the_parsers_detail() -> None:
    w = World()
    space = w.found(ADA)
    junk = w.sign(BO, space, Draft("join", b"\x93\x01\x02\x03"))
    with pytest.raises(RecordError) as parsed:
        parse_body("join", junk.body)
    assert w.state(space).status(junk.id) == Status(Outcome.REJECTED, parsed.value.reason,
                                                    parsed.value.detail)
    assert parsed.value.detail


def test_every_record_of_a_fork_and_after_says_where_the_author_forked() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    mine = [r for r in w.of(space) if r.author == bytes(BO.verify_key)]
    head = mine[-1]
    twin = sign_record(BO, kind="leave", space=space, seq=head.seq, prev=head.prev,
                       ts=w.tick(), body=b"\x80")
    state = w.state(space, [*w.of(space), twin])
    for record in (head, twin):
        assert state.status(record.id) == Status(Outcome.REJECTED, Reason.FORK,
                                                 f"the author forked at seq {head.seq}")


def test_a_record_refused_early_whose_predecessor_is_absent_keeps_its_refusal() -> None:
    """Refused for its body and waiting for its prev: the refusal is what it shows (it will
    not count whatever arrives), not "waiting"."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    absent = w.sign(BO, space, Draft("leave", b"\x80"), record=False)
    bad = sign_record(BO, kind="join", space=space, seq=absent.seq + 1, prev=absent.id,
                      ts=w.tick(), body=b"\x93\x01\x02\x03")
    with pytest.raises(RecordError) as parsed:
        parse_body("join", bad.body)
    state = w.state(space, [*w.of(space), bad])
    assert state.status(bad.id) == Status(Outcome.REJECTED, parsed.value.reason,
                                          parsed.value.detail)
    assert bad.id not in state.sequence
