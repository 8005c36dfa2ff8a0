"""What the member service returns: frozen dataclasses of plain values, each with ``to_json()``.

Ids and keys are ``bytes`` here; ``to_json()`` gives the objects the CLI prints with ``--json``
(ids and keys as lowercase hex, times as UTC milliseconds) and the node's control socket will
send. The keys of every ``to_json()`` are the stable contract documented in ``docs/cli.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def hex_or_none(value: bytes | None) -> str | None:
    """Lowercase hex of ``value``, or None."""
    return None if value is None else value.hex()


def json_value(value: object) -> Any:
    """A JSON-ready copy of a post field: bytes as hex, mappings as dicts, tuples as lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class SpaceSummary:
    """One line of ``spaces``: what a space is and where this member stands in it."""

    id: bytes
    kind: str
    """``crew``, ``dyad``, ``congregation``, or ``unknown`` while its genesis is missing."""
    name: str | None
    """None while this member holds no key of the space (the name is encrypted)."""
    purpose: str
    rhythm: str | None
    """E.g. ``weekly:mon+00:00`` (see :mod:`meshcrew.service.rhythm_text`); None if locked."""
    parent: bytes | None
    history: bool
    members: int
    """How many current members."""
    my_status: str
    """``active``, ``left``, ``removed``, or ``outsider`` (records held, never a member)."""
    waiting_for_keys: bool
    """A current member who holds no key yet (joined; the inviter has not rotated yet)."""
    needs_checkin: bool
    """A crew or dyad member who has not checked in during the current cycle."""
    founder: bytes | None
    created_ts: int | None
    last_ts: int
    """The signed time of the newest accepted record of the space."""
    quorum: int | None = None
    """Percent of the electorate that must have answered a proposal at its deadline (None
    while locked)."""
    writes_as: bytes | None = None
    """The member this laptop writes as here: its own key, or on a linked laptop its member's
    (not in ``--json``; the app's title uses it)."""

    @property
    def locked_because(self) -> str:
        """Why the name is not shown while it is locked: a member the keys have not reached yet,
        or someone who is not in the space (records carried or imported) and never will read
        it."""
        return "no key yet" if self.my_status == "active" else "not a member"

    def to_json(self) -> dict[str, Any]:
        """The ``spaces --json`` object of this space."""
        return {
            "id": self.id.hex(), "kind": self.kind, "name": self.name, "purpose": self.purpose,
            "rhythm": self.rhythm, "parent": hex_or_none(self.parent), "history": self.history,
            "members": self.members, "my_status": self.my_status,
            "waiting_for_keys": self.waiting_for_keys, "needs_checkin": self.needs_checkin,
            "founder": hex_or_none(self.founder), "created_ts": self.created_ts,
            "last_ts": self.last_ts, "quorum": self.quorum,
        }


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """One row of ``members``: someone who is or was a member."""

    key: bytes
    name: str
    """Their latest profile name in the space, else their fingerprint."""
    fingerprint: str
    bio: str
    status: str
    """``active``, ``left`` or ``removed``."""
    joined_ts: int
    invited_by: bytes | None
    is_me: bool
    is_founder: bool

    def to_json(self) -> dict[str, Any]:
        """The ``members --json`` object of this member."""
        return {
            "key": self.key.hex(), "name": self.name, "fingerprint": self.fingerprint,
            "bio": self.bio, "status": self.status, "joined_ts": self.joined_ts,
            "invited_by": hex_or_none(self.invited_by), "is_me": self.is_me,
            "is_founder": self.is_founder,
        }


@dataclass(frozen=True, slots=True)
class PostEntry:
    """One entry of a space's log: a decrypted post, or (with events) a membership record.

    ``kind`` is the post's kind (``checkin``, ``reply``, ...) for a post; for a membership
    record it is the record's kind (``genesis``, ``invite``, ``join``, ``leave``, ``remove``,
    ``consent``, ``keys``); ``locked`` is a post this member holds no key for.
    """

    id: bytes
    space: bytes
    kind: str
    author: bytes
    author_name: str
    seq: int
    ts: int
    fields: Mapping[str, Any] = field(default_factory=dict)
    """The post's own fields (text, energy, compass, ask, to, title, ...)."""
    device: bytes = b""
    """The device that signed it, when that is not the member key itself (``seq`` is then
    the place in that device's chain); empty otherwise."""

    @property
    def chain(self) -> bytes:
        """The key whose chain the record is in (its signer)."""
        return self.device or self.author

    @property
    def is_post(self) -> bool:
        """Whether this is a post (not a membership record or a locked post)."""
        return self.kind not in EVENT_KINDS

    def to_json(self) -> dict[str, Any]:
        """The ``log --json`` object: the envelope keys, then the body's fields at top level."""
        out = {name: json_value(value) for name, value in self.fields.items()}
        out.update({"id": self.id.hex(), "space": self.space.hex(), "kind": self.kind,
                    "author": self.author.hex(), "author_name": self.author_name,
                    "seq": self.seq, "ts": self.ts})
        if self.device:
            out["device"] = self.device.hex()
        return out


EVENT_KINDS = frozenset({"genesis", "invite", "join", "leave", "remove", "consent", "keys",
                         "revoke", "carrier", "locked", "unknown", "device", "unlink"})
"""Log kinds that are not readable posts."""


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    """What was said in answer to one post, oldest first."""

    post: PostEntry
    replies: tuple[PostEntry, ...]
    reactions: tuple[PostEntry, ...]
    followups: tuple[PostEntry, ...]

    def to_json(self) -> dict[str, Any]:
        """The post and its answers."""
        return {"post": self.post.to_json(),
                "replies": [p.to_json() for p in self.replies],
                "reactions": [p.to_json() for p in self.reactions],
                "followups": [p.to_json() for p in self.followups]}


@dataclass(frozen=True, slots=True)
class CycleEntry:
    """The current rhythm cycle of a space: who has checked in and who has not yet."""

    space: bytes
    rhythm: str
    start_ms: int
    end_ms: int
    checkins: tuple[PostEntry, ...]
    """Each current member's latest check-in of the cycle (by author key)."""
    missing: tuple[MemberEntry, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``rhythm --json`` object."""
        return {"space": self.space.hex(), "rhythm": self.rhythm, "start_ms": self.start_ms,
                "end_ms": self.end_ms, "checkins": [p.to_json() for p in self.checkins],
                "missing": [m.to_json() for m in self.missing]}


@dataclass(frozen=True, slots=True)
class BoardItem:
    """An ask (an ``ask`` post or a check-in's ask) or an offer, with its follow-ups."""

    post: PostEntry
    title: str
    followups: tuple[PostEntry, ...]
    closed: bool

    def to_json(self) -> dict[str, Any]:
        """One item of ``board --json``."""
        return {"post": self.post.to_json(), "title": self.title, "closed": self.closed,
                "followups": [p.to_json() for p in self.followups]}


@dataclass(frozen=True, slots=True)
class BoardView:
    """A space's board: asks and offers, upcoming gatherings, crew cards, who seeks a crew."""

    space: bytes
    items: tuple[BoardItem, ...]
    gatherings: tuple[PostEntry, ...]
    crew_cards: tuple[PostEntry, ...]
    looking_for_crew: tuple[PostEntry, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``board --json`` object."""
        return {"space": self.space.hex(), "items": [i.to_json() for i in self.items],
                "gatherings": [p.to_json() for p in self.gatherings],
                "crew_cards": [p.to_json() for p in self.crew_cards],
                "looking_for_crew": [p.to_json() for p in self.looking_for_crew]}


@dataclass(frozen=True, slots=True)
class RemovalEntry:
    """A removal proposal and how far its consent has come."""

    id: bytes
    space: bytes
    member: bytes
    member_name: str
    proposer: bytes
    consents: tuple[bytes, ...]
    """Keys of the electorate who agreed (the proposer included)."""
    electorate: int
    needed: int
    effective: bool
    ts: int

    def to_json(self) -> dict[str, Any]:
        """One item of ``members --json``'s ``removals``."""
        return {"id": self.id.hex(), "space": self.space.hex(), "member": self.member.hex(),
                "member_name": self.member_name, "proposer": self.proposer.hex(),
                "consents": [k.hex() for k in self.consents], "electorate": self.electorate,
                "needed": self.needed, "effective": self.effective, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class CarrierEntry:
    """A carrier a space names: a node that holds and serves its sealed records."""

    key: bytes
    peer_id: str
    space: bytes
    added_by: bytes
    added_by_name: str
    added_ts: int

    def to_json(self) -> dict[str, Any]:
        """One item of ``carriers --json``."""
        return {"key": self.key.hex(), "peer_id": self.peer_id, "space": self.space.hex(),
                "added_by": self.added_by.hex(), "added_by_name": self.added_by_name,
                "added_ts": self.added_ts}


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """A refused record and why.

    ``source`` says who refused it: ``store`` (the envelope or the chain rules, from the
    replica's reject log), ``space`` (the space rules, e.g. ``not_member``) or ``post`` (an
    accepted sealed record whose content is ``unreadable`` or a ``bad_body``).
    """

    record_id: bytes | None
    space: bytes | None
    source: str
    reason: str
    sentence: str
    detail: str
    author: bytes | None
    sender: str | None
    """Who sent it (store rejects only): ``local``, a peer id, or ``file:NAME``."""
    at_ms: int
    """When it was refused (store) or the record's signed time (space, post)."""

    def to_json(self) -> dict[str, Any]:
        """One item of ``rejects --json``."""
        return {"record_id": hex_or_none(self.record_id), "space": hex_or_none(self.space),
                "source": self.source, "reason": self.reason, "sentence": self.sentence,
                "detail": self.detail, "author": hex_or_none(self.author),
                "sender": self.sender, "at_ms": self.at_ms}


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What :meth:`Member.ingest` (and ``import``) did with a batch of records."""

    accepted: tuple[bytes, ...]
    """Ids the replica accepted (earlier pending records this batch unblocked included)."""
    pending: tuple[bytes, ...]
    """Ids that wait for an earlier record of their author."""
    duplicates: int
    rejected: tuple[RejectedEntry, ...]
    """Refused by the replica (envelope or chain rules), fork evidence included."""
    refused: tuple[RejectedEntry, ...]
    """Accepted by the replica but refused by the space rules (e.g. ``not_member``)."""
    spaces: tuple[bytes, ...]
    """Spaces the batch has records of (new or already held), among those the replica holds."""
    rotated: tuple[bytes, ...]
    """Spaces where this member rotated the keys afterwards (to let a joiner in)."""

    def to_json(self) -> dict[str, Any]:
        """The ``import --json`` object."""
        return {"accepted": len(self.accepted), "pending": len(self.pending),
                "duplicates": self.duplicates, "rejected": len(self.rejected),
                "refused": len(self.refused), "spaces": [s.hex() for s in self.spaces],
                "rotated": [s.hex() for s in self.rotated],
                "rejects": [r.to_json() for r in (*self.rejected, *self.refused)]}


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :meth:`Member.export_file` wrote."""

    path: str
    records: int
    spaces: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``export --json`` object."""
        return {"path": self.path, "records": self.records,
                "spaces": [s.hex() for s in self.spaces]}


@dataclass(frozen=True, slots=True)
class NamedKey:
    """A member's key with their display name in the space."""

    key: bytes
    name: str

    def to_json(self) -> dict[str, Any]:
        """``{"key", "name"}``."""
        return {"key": self.key.hex(), "name": self.name}


@dataclass(frozen=True, slots=True)
class AnswerEntry:
    """A member's answer to a proposal, the one that counts."""

    id: bytes
    member: bytes
    name: str
    position: str
    """``consent``, ``stand_aside`` or ``object``."""
    reason: str
    ts: int
    before_amendment: bool
    """Given before the proposal's latest amendment (it answered an earlier version)."""

    def to_json(self) -> dict[str, Any]:
        """One item of a PROPOSAL's ``answers``."""
        return {"id": self.id.hex(), "member": self.member.hex(), "name": self.name,
                "position": self.position, "reason": self.reason, "ts": self.ts,
                "before_amendment": self.before_amendment}


@dataclass(frozen=True, slots=True)
class ProposalEntry:
    """A proposal, who answered what, and its outcome (see :mod:`meshcrew.spaces.proposals`)."""

    id: bytes
    space: bytes
    proposer: bytes
    proposer_name: str
    title: str
    """The latest title (amendments included)."""
    text: str
    ts: int
    deadline_ms: int
    status: str
    """``open``, ``blocked``, ``passed``, ``expired`` or ``withdrawn``."""
    decided_ms: int | None
    """When the outcome became final (None while open)."""
    quorum: int
    needed: int
    """Answers needed at the deadline for the quorum (the proposer's included)."""
    electorate: tuple[NamedKey, ...]
    answers: tuple[AnswerEntry, ...]
    waiting: tuple[NamedKey, ...]
    """Members of the electorate who have not answered."""
    amendments: int
    change: Mapping[str, Any] | None = None
    """The settings it proposes to change (as :func:`change_json` gives them), if any."""
    carried_out: bool = False
    """Its change has been made (by a ``settings`` post naming it)."""

    @property
    def decided(self) -> bool:
        """Whether the outcome is final."""
        return self.decided_ms is not None

    def answer_of(self, member: bytes) -> AnswerEntry | None:
        """``member``'s answer that counts, if any."""
        return next((a for a in self.answers if a.member == member), None)

    def to_json(self) -> dict[str, Any]:
        """The ``proposals --json`` object of one proposal."""
        return {"id": self.id.hex(), "space": self.space.hex(),
                "proposer": self.proposer.hex(), "proposer_name": self.proposer_name,
                "title": self.title, "text": self.text, "ts": self.ts,
                "deadline_ms": self.deadline_ms, "status": self.status,
                "decided": self.decided, "decided_ms": self.decided_ms, "quorum": self.quorum,
                "needed": self.needed, "electorate": [k.to_json() for k in self.electorate],
                "answers": [a.to_json() for a in self.answers],
                "waiting": [k.to_json() for k in self.waiting],
                "amendments": self.amendments,
                "change": None if self.change is None else dict(self.change),
                "carried_out": self.carried_out}


@dataclass(frozen=True, slots=True)
class InviteEntry:
    """An invite of a space and what became of it."""

    id: bytes
    space: bytes
    inviter: bytes
    inviter_name: str
    uses: int
    used: int
    """How many joins have taken a use (a join that lapsed included)."""
    expires_ms: int
    revoked: bool
    open: bool
    """It can still admit someone: not revoked, not used up, not expired (by this member's
    clock)."""
    ts: int

    def to_json(self) -> dict[str, Any]:
        """One item of ``invites --json``."""
        return {"id": self.id.hex(), "space": self.space.hex(), "inviter": self.inviter.hex(),
                "inviter_name": self.inviter_name, "uses": self.uses, "used": self.used,
                "expires_ms": self.expires_ms, "revoked": self.revoked, "open": self.open,
                "ts": self.ts}


@dataclass(frozen=True, slots=True)
class SettingsEntry:
    """A space's settings now (as ``settings --json`` shows them)."""

    name: str
    purpose: str
    rhythm: str
    quorum: int
    edit_by_proposal: bool
    """Whether the settings change only by a passed proposal (always true in a crew or dyad)."""
    keep_checkins: int = 0
    """How many cycles check-ins are kept (0: forever)."""
    keep_posts: int = 0
    """How many cycles other conversation posts are kept (0: forever)."""

    def to_json(self) -> dict[str, Any]:
        """The ``settings`` object."""
        return {"name": self.name, "purpose": self.purpose, "rhythm": self.rhythm,
                "quorum": self.quorum, "edit_by_proposal": self.edit_by_proposal,
                "keep_checkins": self.keep_checkins, "keep_posts": self.keep_posts}


@dataclass(frozen=True, slots=True)
class SettingsChangeEntry:
    """One change of a space's settings that counted."""

    id: bytes
    space: bytes
    author: bytes
    author_name: str
    ts: int
    by: bytes | None
    """The proposal it carried out (None: a congregation member's own change)."""
    by_title: str | None
    change: Mapping[str, Any]
    """What changed, as :func:`change_json` gives it."""

    def to_json(self) -> dict[str, Any]:
        """One item of ``settings --json``'s ``history``."""
        return {"id": self.id.hex(), "space": self.space.hex(), "author": self.author.hex(),
                "author_name": self.author_name, "ts": self.ts,
                "by": hex_or_none(self.by), "by_title": self.by_title,
                "change": dict(self.change)}
