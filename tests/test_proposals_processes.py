"""Proposals across real ``meshcrew node`` processes on 127.0.0.1, driven through the CLI: one
passes, one is blocked, one expires at its deadline; every node reaches the same outcome.

Waits poll a condition with a deadline (see ``node_processes``); nothing sleeps a fixed time.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshcrew.service import ProposalEntry, SpaceSummary
from node_processes import Fleet, NodeProcess, crew_of, fleet, start_all, wait_for

__all__ = ["fleet"]  # the fixture


def outcome(node: NodeProcess, space: str, proposal: str) -> dict[str, Any] | None:
    """The proposal as ``proposals --json`` shows it on ``node`` (None until it arrived).

    Asked over the node's control socket (what the CLI does, without a process per poll).
    """
    found: list[ProposalEntry] = node.call("proposals", bytes.fromhex(space))
    return next((p.to_json() for p in found if p.id.hex() == proposal), None)


def statuses(nodes: tuple[NodeProcess, ...], space: str, proposal: str) -> set[str | None]:
    found = (outcome(n, space, proposal) for n in nodes)
    return {p["status"] if p is not None else None for p in found}


def holds_keys(node: NodeProcess, space: str, members: int) -> bool:
    summary: SpaceSummary = node.call("summary", bytes.fromhex(space))
    return not summary.waiting_for_keys and summary.members == members


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_proposals_pass_block_and_expire_alike_on_three_nodes(fleet: Fleet) -> None:
    ada, bo, cy = nodes = tuple(fleet.make("Ada", "Bo", "Cy"))
    start_all(*nodes)
    space = crew_of(ada, bo, cy)
    wait_for(lambda: all(holds_keys(n, space, 3) for n in nodes), within=30,
             what="every member holding the keys")
    # Passes: everyone answers, no objection.
    passing = ada.cli("propose", space, "--title", "Meet on Thursdays", "--text",
                      "Tuesdays clash with the choir")["id"]
    # Blocked: Ada objects to Bo's proposal.
    blocked = bo.cli("propose", space, "--title", "Buy a second kettle")["id"]
    wait_for(lambda: None not in statuses(nodes, space, passing) | statuses(nodes, space,
                                                                           blocked),
             within=30, what="both proposals on every node")
    bo.run("answer", passing[:12], "consent")
    cy.run("answer", passing[:12], "stand-aside", "--reason", "away in March")
    ada.run("answer", blocked[:12], "object", "--reason", "we have one that works")
    # Expires: Cy's proposal with a short deadline that nobody answers in time (Ada consents,
    # Bo does not answer; the quorum is everyone). Made last, so that Ada's answer, one CLI
    # command after it reaches her, comes before the deadline on a loaded machine too (made
    # first, it waited for five commands: at load 7 her consent came after the 12 s).
    expiring = cy.cli("propose", space, "--title", "Paint the hall", "--deadline", "12s")["id"]
    wait_for(lambda: outcome(ada, space, expiring) is not None, within=12, what="Cy's proposal")
    ada.run("answer", expiring[:12], "consent")
    wait_for(lambda: statuses(nodes, space, passing) == {"passed"}, within=30,
             what="the proposal passed on every node")
    wait_for(lambda: statuses(nodes, space, blocked) == {"blocked"}, within=30,
             what="the proposal blocked on every node")
    wait_for(lambda: statuses(nodes, space, expiring) == {"expired"}, within=40,
             what="the proposal expired on every node")
    views = [outcome(n, space, passing) for n in nodes]
    assert all(v == views[0] for v in views), "every node works out the same outcome"
    first = views[0]
    assert first is not None
    assert {a["name"]: a["position"] for a in first["answers"]} == {"Bo": "consent",
                                                                    "Cy": "stand_aside"}
    late = bo.run("answer", expiring[:12], "consent", check=False)
    assert late.returncode == 1
    assert "reached its deadline" in late.stderr or "closed" in late.stderr
    still_blocked = outcome(cy, space, blocked)
    assert still_blocked is not None
    assert [a["reason"] for a in still_blocked["answers"]] == ["we have one that works"]
