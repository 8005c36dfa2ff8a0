"""Crew cards that only a crew's members can post.

A congregation cannot see inside its crews (their records are sealed to their members), so it
cannot check a card's author against the crew's member list. Instead a crew proves its card:

* every crew or dyad has a **card key**, an ed25519 key derived from its meta key
  (:func:`card_signing_key`). The meta key is made by the founder and reaches every member
  with the keys they are given, so exactly the crew's members (past and present) hold it. The
  public half is in the crew's **genesis** record, in plaintext; the crew's id is that record's
  hash, so the key is bound to the crew;
* a card carries the crew's genesis record and a signature by the card key over the card, the
  congregation it is posted in and its author (:func:`card_message`): it cannot be moved to
  another congregation or claimed by another author.

Every congregation member checks the same things (:func:`card_problem`) and reaches the same
verdict; a card that fails is not shown, and is refused with ``card_unproven``.

What it does not do: a member who left the crew keeps the meta key (it never changes), so they
can still post a card. The board shows each crew's latest card, so the crew answers with a newer
one. A crew made before card keys existed has none, and its cards are refused.
"""

from __future__ import annotations

from dataclasses import replace

import msgpack
from nacl.encoding import RawEncoder
from nacl.exceptions import BadSignatureError
from nacl.hash import blake2b
from nacl.signing import SigningKey, VerifyKey

from meshcrew.reasons import Reason
from meshcrew.records import RecordError, decode_and_verify
from meshcrew.spaces.bodies import GenesisBody, parse_body
from meshcrew.spaces.kinds import PostKind, RecordKind, SpaceKind
from meshcrew.spaces.posts import CrewCard
from meshcrew.spaces.sealing import OpenedSpace
from meshcrew.spaces.state import Outcome, Status

CARD_AD = b"meshcrew/crew-card/v1\x00"
_CARD_PERSON = b"meshcrew-card"


def card_signing_key(meta_key: bytes) -> SigningKey:
    """The card key of the space whose meta key is ``meta_key``."""
    seed = blake2b(meta_key, digest_size=32, person=_CARD_PERSON.ljust(16, b"\0"),
                   encoder=RawEncoder)
    return SigningKey(seed)


def card_public_key(meta_key: bytes) -> bytes:
    """The public half of :func:`card_signing_key` (what the genesis carries)."""
    return bytes(card_signing_key(meta_key).verify_key)


def card_message(congregation: bytes, author: bytes, card: CrewCard) -> bytes:
    """What the card key signs: the card's fields, where it is posted and by whom."""
    fields: bytes = msgpack.packb([card.crew, card.name, card.open, card.note],
                                  use_bin_type=True)
    return CARD_AD + congregation + author + fields


def prove_card(card: CrewCard, *, congregation: bytes, author: bytes, meta_key: bytes,
               genesis: bytes) -> CrewCard:
    """``card`` with its proof: the crew's genesis record and the card key's signature.

    Args:
        card: the card (its ``crew`` is the crew's id).
        congregation: the congregation it will be posted in.
        author: who posts it.
        meta_key: the crew's meta key (held by its members).
        genesis: the crew's genesis record, as signed.
    """
    signed = card_signing_key(meta_key).sign(card_message(congregation, author, card))
    return replace(card, genesis=genesis, proof=signed.signature)


def card_problem(congregation: bytes, author: bytes, card: CrewCard) -> str | None:
    """Why ``card`` (posted by ``author`` in ``congregation``) is not proven, or None if it is."""
    if not card.genesis or not card.proof:
        return "the card carries no proof from the crew"
    try:
        genesis = decode_and_verify(card.genesis)
        body = parse_body(genesis.kind, genesis.body)
    except RecordError as exc:
        return f"its genesis record is refused ({exc.reason.value})"
    if genesis.id != card.crew or genesis.kind != RecordKind.GENESIS \
            or not genesis.creates_space:
        return "its genesis record is not the crew's"
    if not isinstance(body, GenesisBody) or body.space_kind is SpaceKind.CONGREGATION:
        return "the space it names is not a crew or dyad"
    if body.card_key is None:
        return "the crew has no card key (it was made before cards were proven)"
    try:
        VerifyKey(body.card_key).verify(card_message(congregation, author, card), card.proof)
    except (BadSignatureError, ValueError):
        return "the signature is not the crew's card key's"
    return None


def unproven_cards(opened: OpenedSpace) -> dict[bytes, Status]:
    """The crew cards of a congregation that fail :func:`card_problem`, refused with
    ``card_unproven`` (the same for every member)."""
    refused = {}
    for post in opened.of_kind(PostKind.CREW_CARD):
        assert isinstance(post.post, CrewCard)
        problem = card_problem(opened.state.space_id, post.author, post.post)
        if problem is not None:
            refused[post.record_id] = Status(Outcome.REJECTED, Reason.CARD_UNPROVEN, problem)
    return refused

