"""The proposal commands: ``propose``, ``answer``, ``amend``, ``withdraw``, ``proposals``, in
process over homes that pass records by file; the ``--json`` keys are those of docs/cli.md, and
bad input gets one line and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshcrew.cli.proposal_commands import deadline_ms
from meshcrew.errors import InputError
from test_cli_spaces import _no_meshcrew_env, cli, cli_json, crew, record_count, refused, share

__all__ = ["_no_meshcrew_env", "crew"]  # fixtures

PROPOSAL_KEYS = {"id", "space", "proposer", "proposer_name", "title", "text", "ts",
                 "deadline_ms", "status", "decided", "decided_ms", "quorum", "needed",
                 "electorate", "answers", "waiting", "amendments", "change", "carried_out"}
ANSWER_KEYS = {"id", "member", "name", "position", "reason", "ts", "before_amendment"}
DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_a_proposal_from_blocked_to_passed(crew: tuple[str, list[Path]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    made = cli_json(capsys, ada, "propose", "Moon", "--title", "Meet on Thursdays",
                    "--text", "Tuesdays clash with the choir", "--deadline", "3d")
    pid = made["id"][:8]
    share(capsys, space, ada, bob, cy)
    cli(capsys, bob, "answer", pid, "consent")
    cli(capsys, cy, "answer", pid, "object", "--reason", "Thursdays I teach")
    share(capsys, space, ada, bob, cy)
    listing = cli_json(capsys, ada, "proposals", "Moon")
    [entry] = listing["proposals"]
    assert set(entry) == PROPOSAL_KEYS
    assert entry["status"] == "blocked"
    assert {a["name"]: (a["position"], a["reason"]) for a in entry["answers"]} == {
        "Bob": ("consent", ""), "Cy": ("object", "Thursdays I teach")}
    assert all(set(a) == ANSWER_KEYS for a in entry["answers"])
    text = cli(capsys, ada, "proposals", "Moon")
    assert "'Meet on Thursdays' by Ada: blocked" in text
    assert "Cy: object: Thursdays I teach" in text
    cli(capsys, ada, "amend", pid, "--title", "Meet on Thursdays at 8")
    share(capsys, space, ada, bob, cy)
    cli(capsys, cy, "answer", pid, "stand-aside", "--reason", "I can do 8, just")
    share(capsys, space, ada, bob, cy)
    [entry] = cli_json(capsys, bob, "proposals", "Moon")["proposals"]
    assert (entry["status"], entry["decided"], entry["amendments"]) == ("passed", True, 1)
    assert entry["title"] == "Meet on Thursdays at 8"
    assert {a["name"]: a["before_amendment"] for a in entry["answers"]} == {"Bob": True,
                                                                            "Cy": False}
    assert cli_json(capsys, bob, "proposals", "Moon", "--open")["proposals"] == []
    log = cli(capsys, bob, "log", "Moon", "--posts")
    assert "proposed 'Meet on Thursdays'" in log
    assert "answered" in log


def test_bad_proposal_input_gets_one_line_and_changes_nothing(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    pid = cli_json(capsys, ada, "propose", "Moon", "--title", "Buy a kettle")["id"][:8]
    checkin = cli(capsys, bob, "checkin", "Moon", "--text", "arriving").strip()[:8]
    share(capsys, space, ada, bob, cy)
    held = record_count(bob)
    assert "No proposal matches" in refused(capsys, bob, "answer", checkin, "consent")
    assert "is not a proposal id" in refused(capsys, bob, "answer", "zz", "consent")
    assert "say why" in refused(capsys, bob, "answer", pid, "object")
    assert "Only the member who made a proposal" in refused(capsys, bob, "amend", pid,
                                                             "--text", "two kettles")
    assert "Only the member who made a proposal" in refused(capsys, bob, "withdraw", pid)
    assert "counts as your consent" in refused(capsys, ada, "answer", pid, "consent")
    assert "deadline has passed" in refused(capsys, bob, "propose", "Moon", "--title", "x",
                                            "--deadline", "2001-01-01 00:00")
    assert "invalid choice" in refused(capsys, bob, "answer", pid, "maybe", status=2)
    assert record_count(bob) == held
    cli(capsys, ada, "withdraw", pid, "--note", "we have one")
    share(capsys, space, ada, bob)
    assert "closed (withdrawn)" in refused(capsys, bob, "answer", pid, "consent")
    assert record_count(bob) == held + 1


def test_deadlines_read_as_durations_or_times() -> None:
    now = 1_767_571_200_000
    assert deadline_ms("90s", now) == now + 90_000
    assert deadline_ms("3d", now) == now + 3 * 86_400_000
    assert deadline_ms("2026-02-01T18:00+00:00", now) == 1_769_968_800_000
    with pytest.raises(InputError, match="at most 366 days"):
        deadline_ms("60w", now)
    with pytest.raises(InputError, match="not a date"):
        deadline_ms("soon", now)


def test_the_json_keys_are_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("### `meshcrew proposals"):]
    section = section[:section.index("\n## ")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert documented >= PROPOSAL_KEYS | ANSWER_KEYS
