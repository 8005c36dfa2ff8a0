"""The control socket refuses a value its own checks refuse, and the node keeps serving.

A post travels over the control socket as its dataclass, rebuilt in the node, whose checks run
again there (``__post_init__``). A CLI of another release (other limits) can send one the node's
checks refuse: the node answers with the refusal. It once let the error end the node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshcrew.node import ControlClient, control_types
from meshcrew.records import RecordError
from meshcrew.spaces import Profile
from node_world import open_nodes

pytestmark = pytest.mark.trio


async def test_a_post_the_node_refuses_to_rebuild_is_answered_and_the_node_serves_on(
        tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_nodes(tmp_path, "Ada") as [ada]:
            space = ada.member.create_space("Crew")
            client = ControlClient.if_running(ada.home, control_types())
            assert client is not None
            nameless = Profile("Ada")
            object.__setattr__(nameless, "name", "")  # what this release's checks refuse

            def from_another_cli() -> None:
                with pytest.raises(RecordError, match="name"):
                    client.call("post", space, nameless)
                assert client.call("summary", space).name == "Crew"  # the node serves on

            await trio.to_thread.run_sync(from_another_cli)
