"""The node a CLI command starts for itself (``join`` or ``devices add`` with no ``meshcrew node``
running) hands a refusal back as the error itself, so the CLI prints one sentence."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meshcrew.cli.temporary_node import join_with_temporary_node
from meshcrew.errors import SpaceError
from meshcrew.home import Home
from meshcrew.identity import Identity, save
from meshcrew.service import Member
from meshcrew.store import Replica

HOUR_MS = 3_600_000


def test_a_join_refused_inside_the_node_is_one_meshcrew_error(tmp_path: Path) -> None:
    """trio and libp2p nest an error raised inside the node in their task groups (the CLI
    printed that nest as a traceback for a used-up invite, or one with no member online)."""
    home = Home(tmp_path / "ada")
    home.ensure()
    ada = Identity.generate("Ada")
    save(ada, home.key_file)
    with Replica.open(home) as replica:
        member = Member(replica, ada, clock=lambda: int(time.time() * 1000))
        space = member.create_space("Crew")
        code = member.invite(space, expires_ms=int(time.time() * 1000) + HOUR_MS)
        with pytest.raises(SpaceError, match="already a member") as refused:
            join_with_temporary_node(replica, ada, code, None)
    assert not isinstance(refused.value, BaseExceptionGroup)

