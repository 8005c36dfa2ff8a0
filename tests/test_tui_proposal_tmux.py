"""A proposal's journey through the app in a real terminal (tmux): Ada proposes from the app and
sees Bo's consent (given on his own ``meshcrew node`` process) pass it; then she objects, from the
app, to Bo's proposal, and his node works out that it is blocked.

Waits poll the screen or a node with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from meshcrew.service import ProposalEntry
from node_processes import Fleet, NodeProcess, crew_in_process, fleet, remember, wait_for
from test_demo import MESHCREW, Tmux

__all__ = ["fleet"]  # the fixture


def proposal_titled(node: NodeProcess, space: str, title: str) -> ProposalEntry | None:
    """The proposal with that title as ``node`` holds it (asked over its control socket)."""
    found: list[ProposalEntry] = node.call("proposals", bytes.fromhex(space))
    return next((p for p in found if p.title == title), None)


def status_on(node: NodeProcess, space: str, title: str) -> str | None:
    entry = proposal_titled(node, space, title)
    return None if entry is None else entry.status


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_proposal_from_the_app_passes_and_an_objection_from_it_blocks(fleet: Fleet) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install test installs it)")
    ada, bo = fleet.make("Ada", "Bo")
    space = crew_in_process(ada, bo)
    bo.start()
    remember(ada, bo)  # as her invite code would have: Ada's app dials Bo's node
    ours = f"Meet on Thursdays {os.getpid()}"
    theirs = f"Buy a second kettle {os.getpid()}"
    tmux = Tmux(f"meshcrew-proposal-test-{os.getpid()}")
    done_marker = "APP-EXITED-"
    try:
        app = shlex.join([MESHCREW, "--home", str(ada.home.path)])
        tmux.start(["sh", "-c", f"{app}; echo {done_marker}$?; sleep 60"])
        tmux.wait_until(lambda s: "Crew" in s and "connected to 1 peer" in s, within=45,
                        what="the home screen with the crew and Bo's node connected")
        tmux.keys("Enter")  # open the crew
        tmux.wait_until(lambda s: "Proposals" in s and "Members" in s, within=10,
                        what="the crew's screen")
        tmux.keys("p")
        tmux.wait_until(lambda s: "No proposals yet" in s, within=10,
                        what="the empty proposals list")
        tmux.keys("n")
        tmux.wait_until(lambda s: "What you propose" in s, within=10, what="the proposal form")
        tmux.keys(ours, literal=True)
        tmux.wait_until(lambda s: ours in s, within=10, what="the typed title")
        tmux.keys("Enter")  # the other fields are optional: Enter puts it to the members
        # (the list may cut a long title to its column: its start is enough there)
        tmux.wait_until(lambda s: ours[:7] in s and "What you propose" not in s
                        and "1 of 2" in s,
                        within=10, what="the proposal in the list, open, 1 of 2 answered")
        tmux.keys("Enter")
        tmux.wait_until(lambda s: "waiting for Bo" in s, within=10,
                        what="the proposal open, waiting for Bo")
        wait_for(lambda: status_on(bo, space, ours) == "open", within=30,
                 what="Ada's proposal on Bo's node")
        entry = proposal_titled(bo, space, ours)
        assert entry is not None
        bo.run("answer", entry.id.hex()[:12], "consent")
        tmux.wait_until(lambda s: "Passed: everyone answered, no objection." in s, within=30,
                        what="Bo's consent passing it, in the app")
        bo.run("propose", space, "--title", theirs, "--text", "the old one is slow")
        tmux.keys("Escape")  # back to the list: Bo's proposal is open, so listed first
        tmux.wait_until(lambda s: theirs[:7] in s, within=30, what="Bo's proposal in the list")
        tmux.keys("Home", "Enter")
        tmux.wait_until(lambda s: theirs in s and "waiting for Ada" in s, within=10,
                        what="Bo's proposal, waiting for Ada")
        tmux.keys("o")
        tmux.wait_until(lambda s: "Object: why" in s, within=10, what="the objection prompt")
        tmux.keys("we have one that works", literal=True)
        tmux.keys("Enter")
        tmux.wait_until(lambda s: "Blocked while the objection stands: Ada objects." in s,
                        within=10, what="the proposal blocked by Ada's objection")
        wait_for(lambda: status_on(bo, space, theirs) == "blocked", within=30,
                 what="Bo's node working out that his proposal is blocked")
        wait_for(lambda: status_on(bo, space, ours) == "passed", within=30,
                 what="Bo's node holding Ada's proposal as passed")
        tmux.keys("Escape", "Escape", "Escape")
        tmux.wait_until(lambda s: "n New space" in s, within=10, what="the home screen")
        tmux.keys("q")
        screen = tmux.wait_until(lambda s: done_marker in s, within=20, what="the app to exit")
        assert f"{done_marker}0" in screen
    finally:
        tmux.kill()
