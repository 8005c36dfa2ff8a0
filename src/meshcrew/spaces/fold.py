"""The fold: the state of a space as a pure function of its set of records.

``fold(space_id, records)`` parses every body, puts the records in the canonical order (see
:mod:`meshcrew.spaces.order`) and applies the rules below one record at a time. Records arrive
at a replica in any order and any number of times; the result depends only on the set.

Rules, in the order they are checked for each record:

1. Bodies are parsed first; a body that does not fit its kind is refused (``bad_body``). Then
   records off their author's chain are refused, as a replica's chain rules find them
   (``store/ingest.py``; :mod:`meshcrew.spaces.chains`): two records at one place of an
   author's chain are a fork, and that record and every later one of the author are refused
   (``fork``); so are a record whose predecessor is not the author's record held at the seq
   below, which vouches for a second record there, and that one. A record whose predecessor
   is held but is not the author's previous record (none is held) is refused
   (``chain_broken``), and so is every later one of the author: their chain broke there. A
   record dated before its predecessor, the author's record at the seq below, is refused
   (``time_travel``) and takes no place in the chain: it is no fork, and a good record at its
   seq counts. A replica holds none of these records, so that the fold of any set gives what
   the fold of a replica's records gives, they are left out of the order as if absent: a
   record that names one waits (rule 2).
2. A record whose predecessor, genesis or named records are absent *waits*; it is neither
   accepted nor refused, and it is applied once they arrive.
3. A member removed by consent has every record after their last counting one refused
   (``removed_member``), including a later join.
4. ``join`` (by someone not a current member): the body names the joiner, which must be the
   signer (``join_forged``); the invite must be an accepted invite of this space
   (``invite_unknown``), not revoked, whose maker has not been removed (``invite_revoked``);
   the proof must verify (``invite_bad_proof``); the join's own signed ``ts`` must not be after
   the invite's expiry (``invite_expired``); the invite must have uses left
   (``invite_exhausted``), and the space room (``space_full``). Uses are taken in canonical
   order, so of two concurrent joins with a single-use invite the one with the lower id wins,
   on every replica. The joiner is then a current member *waiting to be let in* (``pending``):
   nothing else they sign counts (``not_member``) and they have no say in a removal until a
   key rotation lets them in (rule 7).
5. Every other record needs its author to be a current member (``not_member``).
6. ``remove`` names a member other than its author and their record at the named seq
   (``bad_reference``; if they have already left or been removed it is accepted and moot), and
   the joins of the other members it was proposed among (it waits for them). ``consent`` names
   an accepted proposal and is not by its target (``not_allowed``). The *electorate* is fixed
   when the proposal is applied: the members it names plus anyone else then a current member,
   less the target. When the proposer and the consenting electorate members reach a majority
   of the electorate, the removal takes effect at that record: the target's records after the
   named seq are refused, and their invites revoked. A consent counts only if its author is a
   member when it is applied; departures after the proposal do not lower the bar (propose
   anew if too many have left). So that this holds whatever the arrival order, the target's
   first record after the named seq, and every join with one of the target's invites that the
   proposal does not name, are ordered after the proposal and all of its consents. If two
   removals wait on each other's consents (members removing each other), the lower id goes
   first, and a removal whose target's later records were already applied does not take
   effect.
7. ``keys`` opens epoch ``n`` after an accepted epoch ``n - 1``; its author is a recipient;
   every recipient who did not hold epoch ``n - 1`` is or was a member or signed a join it
   names; it carries a history link exactly when the space allows history (``bad_epoch``). It
   names the membership changes it answers, so it is ordered after them. Concurrent rotations
   are all accepted; the *current* epoch is one accepted after the latest membership change,
   sealed to exactly the current members and with its transit key sealed to exactly the
   carriers named now (highest number, then lowest id); if none is, ``needs_rekey`` is true.
   (An older epoch sealed to the same members is not current: a departed member may hold its
   key through a history link.) A rotation **lets in** the
   waiting joiners it seals the key to, if its own signed ``ts`` (a member's clock, not the
   joiner's) is no later than their invite's expiry; a later one is refused
   (``invite_expired``) if it names their join, and otherwise lets no one in (made before the
   join, it was sealed to the member they were before they left) and they keep waiting. A
   waiting joiner whose join it names but leaves out, signed after their invite expired,
   *lapses*: the join is refused (``invite_expired``) and they are no member. The joiner's
   first record after the join is ordered after every rotation naming it (but their own).
   While a joiner waits, no epoch is current.
8. ``sealed`` names an accepted epoch (``bad_reference``) whose key was sealed to its author and
   no older than an epoch the author already wrote under or created (``stale_epoch``). Honest
   clients write under the current epoch, so after a departure they rotate first.
9. Records of a kind this version does not know are accepted from members, uninterpreted.
10. ``carrier`` names a carrier (a node that holds and serves the space's sealed records
    without being a member) or drops one. Any current member may do either; naming one already
    named changes nothing (the first naming stands), dropping one not named is refused
    (``bad_reference``), and a space names at most ``MAX_CARRIERS`` (``not_allowed``, in
    :mod:`meshcrew.spaces.kinds`). A carrier is not a member: no epoch key is sealed to it,
    only each epoch's transit key (:mod:`meshcrew.spaces.transit`), so it opens gossip and
    never a post. Naming or dropping one makes the keys rotate (rule 7), so that a dropped
    carrier opens no gossip sealed after it.
11. ``revoke`` (by any current member) names an accepted invite (``bad_reference``); every
    join with it that the revocation does not name (it names those its author had seen) is
    ordered after it and refused (``invite_revoked``), whatever the arrival order.

12. ``device`` certifies its author as a device of the member it names (see
    :mod:`meshcrew.spaces.devices`). From then on the device's records are its member's: every
    rule above that speaks of a member (who is current, who leaves, who proposes or consents,
    who made an invite or named a carrier) reads the member, while chains, epochs shares and
    floors stay per device (each device writes its own chain, holds its own key share). It is
    refused when the member's signature does not verify (``device_unproven``); when the author
    already belongs to a member, as a member key or a device (``device_claimed``: one key, one
    member); when the member was removed (``device_of_removed``), has left, is not let in yet
    or never was (``not_member``); and when it is not the device's first record in the space
    (``not_allowed``). A certificate is a membership change: keys must be sealed to the device
    (the rotation names its certificate). A device cannot join as a member (``device_claimed``).
13. ``unlink`` revokes a device: posted by the member key or another current device of the
    same member (``not_allowed`` otherwise, and for the device itself), with the member's
    signature (``device_unproven``), naming a device of that member (``bad_reference``) and
    that device's record at the named seq (``bad_reference``). The device's records after it
    are refused (``device_revoked``); its record after the named seq is ordered after the
    revocation, so this holds whatever the arrival order. A revocation is a membership
    change: keys must move away from the device. Revoking a revoked device changes nothing.
    A removed member's devices are out with them: a removal names each device's last counting
    record as it names the member's, and their later records are refused
    (``device_of_removed``), ordered after the removal and its consents as the member's are
    (rule 6); a device it does not name has its certificate ordered after them, and so
    refused if the removal takes effect.

No rule reads a clock: expiry compares signed timestamps (invite ``exp`` with the join's
``ts``, and with the ``ts`` of the member's rotation that lets the joiner in). A joiner who holds
an old secret could backdate their join, but not the member's rotation: such a join lapses.

Here are the parsing and the ordering; :class:`meshcrew.spaces.rules.Machine` applies the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from meshcrew.reasons import Reason
from meshcrew.records import Record, RecordError
from meshcrew.spaces.bodies import (
    Body,
    ConsentBody,
    DeviceBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    UnlinkBody,
    parse_body,
)
from meshcrew.spaces.chains import OFF_CHAIN, chain_refusals
from meshcrew.spaces.kinds import RecordKind
from meshcrew.spaces.order import canonical_order, find_waiting, references
from meshcrew.spaces.rules import Machine, refused
from meshcrew.spaces.state import (
    Outcome,
    SpaceState,
    Status,
)


def fold(space_id: bytes, records: Iterable[Record]) -> SpaceState:
    """The state of the space ``space_id`` given a set of its records.

    Args:
        space_id: the space (its genesis record's id).
        records: verified records of that space in any order; duplicates are ignored.

    Raises:
        ValueError: if a record belongs to another space (a caller's mistake).
    """
    by_id: dict[bytes, Record] = {}
    for record in records:
        if record.space_id != space_id:
            raise ValueError(f"record {record.id.hex()} belongs to another space")
        by_id[record.id] = record
    bodies, early = _parse_all(space_id, by_id)
    off_chain = {rid for rid, status in early.items() if status.reason in OFF_CHAIN}
    hard: dict[bytes, list[bytes]] = {}
    for rid, record in by_id.items():
        if rid in off_chain:
            continue  # as if absent (rule 1)
        deps = [] if record.creates_space else [space_id]
        if record.prev is not None:
            deps.append(record.prev)
        body = bodies.get(rid)
        if body is not None:
            deps.extend(references(body))
        hard[rid] = deps
    waiting = find_waiting(hard)
    ready = {rid: deps for rid, deps in hard.items() if rid not in waiting}
    machine = Machine(space_id, by_id, bodies, early)
    stalls: list[bytes] = []
    sequence = canonical_order(ready, _soft_deps(by_id, bodies, early, ready), stalls)
    for rid in sequence:
        machine.apply(by_id[rid])
    for rid, missing in waiting.items():
        machine.statuses[rid] = early.get(rid, Status(Outcome.WAITING, missing=missing))
    for rid in off_chain:
        machine.statuses[rid] = early[rid]
    return machine.result(tuple(sequence), bool(stalls))


def _parse_all(space_id: bytes, by_id: dict[bytes, Record]
               ) -> tuple[dict[bytes, Body | None], dict[bytes, Status]]:
    """Parse bodies and find what can be refused before ordering (bad body, off the chain)."""
    bodies: dict[bytes, Body | None] = {}
    early: dict[bytes, Status] = {}
    for rid, record in by_id.items():
        if record.creates_space and record.kind != RecordKind.GENESIS:
            early[rid] = refused(Reason.BAD_BODY, "a space starts with a genesis record")
        elif record.kind == RecordKind.GENESIS and not record.creates_space:
            early[rid] = refused(Reason.NOT_ALLOWED, "a genesis cannot be posted in a space")
        try:
            bodies[rid] = parse_body(record.kind, record.body)
        except RecordError as exc:
            bodies[rid] = None
            early.setdefault(rid, refused(exc.reason, exc.detail))
    early.update(chain_refusals(by_id))  # they override: such a record is as if absent
    return bodies, early


def _soft_deps(by_id: dict[bytes, Record], bodies: dict[bytes, Body | None],
               early: dict[bytes, Status], ready: dict[bytes, list[bytes]],
               past: Callable[[set[bytes]], set[bytes]] | None = None
               ) -> dict[bytes, set[bytes]]:
    """Ordering hints, so that what a record would decide is decided before what it affects.

    * A removal and its consents come before the target's first record after the named seq,
      and before every join using one of the target's invites that the proposal does not
      name and that none of them builds on (rule 6).
    * A key rotation that names a join comes before the joiner's next record, so that record
      meets an admitted (or lapsed) joiner whatever the arrival order (rule 7); not a rotation
      by the joiner, which their chain puts after it.
    * A revocation comes before every join with its invite that it does not name (rule 11).
    * A device's revocation comes before the device's record after the one it names (rule 13).

    An invite made by a device counts as its member's (the member its certificate claims).
    ``past`` gives what a set of records builds on (default: :func:`_causal_past` over
    ``ready``, every record with its hard dependencies).
    """
    consents: dict[bytes, list[bytes]] = {}
    behind: dict[tuple[bytes, int], set[bytes]] = {}  # (author, seq) → what comes first
    joins_by_invite: dict[bytes, list[bytes]] = {}
    joins_by_inviter: dict[bytes, list[bytes]] = {}
    removals: list[bytes] = []
    revokes: list[bytes] = []
    claims = {by_id[rid].author: body.member for rid, body in bodies.items()  # rule 12
              if isinstance(body, DeviceBody) and by_id[rid].seq == 1 and rid in ready
              and rid not in early}
    for rid in ready:
        body = bodies.get(rid)
        if rid in early or body is None:
            continue
        if isinstance(body, JoinBody):
            inviter = by_id[body.invite].author
            joins_by_invite.setdefault(body.invite, []).append(rid)
            joins_by_inviter.setdefault(claims.get(inviter, inviter), []).append(rid)
        elif isinstance(body, ConsentBody):
            consents.setdefault(body.proposal, []).append(rid)
        elif isinstance(body, RemoveBody):
            removals.append(rid)
        elif isinstance(body, RevokeBody):
            revokes.append(rid)
        elif isinstance(body, UnlinkBody):
            behind.setdefault((body.device, body.last_seq + 1), set()).add(rid)
        elif isinstance(body, LeaveBody) and (body.devices or claims):
            leaver = by_id[rid].author
            _behind_devices(behind, claims, claims.get(leaver, leaver), body.devices, {rid},
                            leaver)
        elif isinstance(body, KeysBody):
            for named in body.after:  # not the joiner's own: it follows their next record
                join = by_id.get(named)
                if join is not None and join.kind == RecordKind.JOIN \
                        and join.author != by_id[rid].author:
                    behind.setdefault((join.author, join.seq + 1), set()).add(rid)
    soft: dict[bytes, set[bytes]] = {}
    for pid in removals:
        body = bodies[pid]
        assert isinstance(body, RemoveBody)
        before = {pid, *consents.get(pid, ())}
        behind.setdefault((body.member, body.last_seq + 1), set()).update(before)
        _behind_devices(behind, claims, body.member, body.devices, before)
        known = set(body.after)  # joins the proposer had seen come first, not after
        unnamed = [j for j in joins_by_inviter.get(body.member, ()) if j not in known]
        # A join the proposal or a consent builds on was seen too, named or not (the joiner
        # may have left since): held back behind them, it would close a cycle.
        seen = (past or partial(_causal_past, ready))(before) if unnamed else set()
        for join_id in unnamed:
            if join_id not in seen:
                soft.setdefault(join_id, set()).update(before)
    for vid in revokes:
        body = bodies[vid]
        assert isinstance(body, RevokeBody)
        for join_id in joins_by_invite.get(body.invite, ()):
            if join_id not in body.used:
                soft.setdefault(join_id, set()).add(vid)
    if behind:
        for rid in ready:
            record = by_id[rid]
            first = behind.get((record.author, record.seq))
            if first is not None:
                soft.setdefault(rid, set()).update(first)
    return soft


def _causal_past(ready: dict[bytes, list[bytes]], starts: set[bytes]) -> set[bytes]:
    """Every record that ``starts`` build on through hash links and references."""
    seen: set[bytes] = set()
    stack = [dep for rid in starts for dep in ready.get(rid, ())]
    while stack:
        rid = stack.pop()
        if rid not in seen and rid in ready:
            seen.add(rid)
            stack.extend(ready[rid])
    return seen


def _behind_devices(behind: dict[tuple[bytes, int], set[bytes]], claims: dict[bytes, bytes],
                    member: bytes, named: tuple[tuple[bytes, int, bytes], ...],
                    first: set[bytes], leaver: bytes | None = None) -> None:
    """A leave or removal of ``member`` (``first``: it and its consents) comes before each
    named device's record after the named one, and before the certificate of every device
    of the member it does not name (rules 12 and 13), but the ``leaver``'s own: a leave
    follows its author's certificate in their chain."""
    for device, seq, _ in named:
        behind.setdefault((device, seq + 1), set()).update(first)
    cut = {device for device, _, _ in named}
    if leaver is not None:
        cut.add(leaver)
    for device, owner in claims.items():
        if owner == member and device not in cut:
            behind.setdefault((device, 1), set()).update(first)
