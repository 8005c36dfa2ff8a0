"""A joiner that leaves after the history without its join costs nothing (it was cancelled, it
timed out, its node stopped: tests/test_honest_charges.py), so a leaked invite code could make
the member's node send the space's whole history over and over, under any peer id. The same
invite may leave a history unfinished UNFINISHED_PER_INVITE times within the hour; after that
its asks are refused with a sentence, while a join that finishes, and other invites, go on."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshcrew.net import Host
from meshcrew.node.join import (
    ASK,
    HISTORY,
    JOIN_PROTOCOL,
    JOIN_VERSION,
    RECORDS,
    REFUSED,
    TOO_MANY_UNFINISHED,
    UNFINISHED_PER_INVITE,
    Messages,
    encode_frame,
)
from meshcrew.spaces import decode_invite_code
from meshcrew.spaces.invites import prove_invite
from node_world import open_nodes, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000


async def pull_and_leave(host: Host, to: str, text: str, space: bytes) -> list[object] | None:
    """Ask to join with ``text``, read the history up to its end, leave without the join; the
    refusal frame if the member's node refused instead."""
    code = decode_invite_code(text)
    proof = prove_invite(code.secret, space, host.public_key)
    stream = await host.open_stream(to, JOIN_PROTOCOL)
    await stream.send_all(encode_frame([ASK, JOIN_VERSION, space, code.invite_id, proof]))
    try:
        messages = Messages(stream)
        first = await messages.next()
        if first[0] == REFUSED:
            return first
        assert first[0] == HISTORY
        while (await messages.next())[0] == RECORDS:
            pass
        return None
    finally:
        await stream.aclose()


async def test_an_invite_left_unfinished_too_often_is_refused_and_others_still_join(
        tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with open_nodes(tmp_path, "Ada", "Bo", "Cy") as [ada, bo, cy]:
            space = ada.member.create_space("Crew")
            leaked = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs(),
                                       uses=50)
            await bo.host.connect(ada.addrs()[0])
            for _ in range(UNFINISHED_PER_INVITE - 1):
                assert await pull_and_leave(bo.host, ada.host.peer_id, leaked, space) is None
            assert (await bo.join(leaked)).space == space  # a join that finishes counts not
            assert await pull_and_leave(bo.host, ada.host.peer_id, leaked, space) is None
            refused = await pull_and_leave(bo.host, ada.host.peer_id, leaked, space)
            assert refused is not None
            assert refused[1] == TOO_MANY_UNFINISHED
            assert "try again later" in str(refused[2])
            fresh = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            assert (await cy.join(fresh)).space == space  # another invite is not held back
