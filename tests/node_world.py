"""Homes, identities and crews for node tests: made in-process, fast, with real records.

``mint_checkins`` writes many real check-ins (signed, sealed under the crew's current key) in a
few batches, where the member service would refold the space for every one; tests and the
benchmark use it to make a long history quickly and then sync it for real.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.node import Node, NodeConfig, open_node
from meshcrew.records import sign_record
from meshcrew.service import Member
from meshcrew.spaces import CheckIn, seal_post
from meshcrew.store import Replica

LOOPBACK_NODE = NodeConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",), mdns=False,
                           redial_min_s=0.2, redial_max_s=2.0)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def person(name: str, n: int = 0) -> Identity:
    """A deterministic identity."""
    return Identity.from_seed(hashlib.sha256(f"meshcrew node test {name} {n}".encode()).digest(),
                              name)


def make_home(root: Path, name: str, n: int = 0) -> tuple[Home, Identity]:
    """A home folder holding a saved identity (as ``meshcrew init`` makes it)."""
    home = Home(root / name.lower())
    home.ensure()
    who = person(name, n)
    identity.save(who, home.key_file)
    return home, who


@dataclass
class Crew:
    """A crew founded in a home folder, before any node runs."""

    home: Home
    founder: Identity
    space: bytes


def found_crew(home: Home, founder: Identity, name: str = "Crew") -> Crew:
    """Create a crew in ``home``'s replica (the founder's profile included)."""
    with Replica.open(home) as replica:
        space = Member(replica, founder, clock=wall_ms).create_space(name)
    return Crew(home, founder, space)


def mint_checkins(home: Home, author: Identity, space: bytes, count: int, *,
                  text: str = "check-in {n}", batch: int = 2000,
                  sealed_once: bool = False) -> list[bytes]:
    """Append ``count`` check-ins by ``author`` (a member holding the current key); their ids.

    With ``sealed_once`` every record carries the same sealed body (the text of check-in 0):
    only the signing is repeated, for a long history made in a second or two.
    """
    ids: list[bytes] = []
    with Replica.open(home) as replica:
        member = Member(replica, author, clock=wall_ms)
        state = member.view(space).state
        head = replica.frontier(space)[author.public_key]
        prev, seq, ts = head.id, head.seq, wall_ms()
        pending: list[bytes] = []
        made = seal_post(state, author.signing_key, CheckIn(text=text.format(n=0), energy=1),
                         os.urandom)
        for n in range(count):
            if n and not sealed_once:
                made = seal_post(state, author.signing_key,
                                 CheckIn(text=text.format(n=n), energy=1 + n % 5), os.urandom)
            seq += 1
            record = sign_record(author.signing_key, kind=made.kind, space=space, seq=seq,
                                 prev=prev, ts=ts, body=made.body)
            prev = record.id
            ids.append(record.id)
            pending.append(record.raw)
            if len(pending) == batch or n == count - 1:
                report = replica.append(pending, sender="local", now_ms=wall_ms())
                assert len(report.accepted) == len(pending), report.rejected[:3]
                pending = []
    return ids


def next_checkins(home: Home, author: Identity, space: bytes, count: int) -> list[bytes]:
    """``count`` check-ins by ``author`` following their head in ``home``'s replica, signed but
    stored nowhere (sealed once, as :func:`mint_checkins` with ``sealed_once``): what a member's
    node would publish next."""
    with Replica.open(home, read_only=True) as replica:
        state = Member(replica, author, clock=wall_ms).view(space).state
        head = replica.frontier(space)[author.public_key]
    made = seal_post(state, author.signing_key, CheckIn(text="again", energy=5), os.urandom)
    raws: list[bytes] = []
    prev, seq, ts = head.id, head.seq, wall_ms()
    for _ in range(count):
        seq += 1
        record = sign_record(author.signing_key, kind=made.kind, space=space, seq=seq,
                             prev=prev, ts=ts, body=made.body)
        raws.append(record.raw)
        prev = record.id
    return raws


def crew_by_file(root: Path, *names: str,
                 then: Callable[[Member, Member, list[bytes]], object] | None = None
                 ) -> tuple[Home, Identity, Home, Identity, list[bytes]]:
    """Ada founds a space per name (a crew "Crew" if none) and Bo joins the first through
    files, as an offline join goes, Ada letting him in; no node runs. ``then`` does more with
    both member services before their replicas close. Returns both homes and identities and
    the spaces' ids."""
    ada_home, ada_who = make_home(root, "Ada")
    bo_home, bo_who = make_home(root, "Bo")
    with Replica.open(ada_home) as ada_replica, Replica.open(bo_home) as bo_replica:
        ada = Member(ada_replica, ada_who, clock=wall_ms)
        bo = Member(bo_replica, bo_who, clock=wall_ms)
        spaces = [ada.create_space(name) for name in names or ("Crew",)]
        code = ada.invite(spaces[0], expires_ms=wall_ms() + 3_600_000)
        bo.ingest(ada.export(spaces[0]), sender="file")
        bo.join(code)
        ada.ingest(bo.export(spaces[0]), sender="file")  # Ada rotates the keys
        if then is not None:
            then(ada, bo, spaces)
    return ada_home, ada_who, bo_home, bo_who, spaces


@asynccontextmanager
async def open_nodes(root: Path, *names: str, config: NodeConfig = LOOPBACK_NODE
                     ) -> AsyncIterator[list[Node]]:
    """In-process nodes on loopback, one per name, each in its own home folder."""
    async with AsyncExitStack() as stack:
        nodes = []
        for name in names:
            home, who = make_home(root, name)
            nodes.append(await stack.enter_async_context(open_node(home, who, config)))
        yield nodes

