"""``meshcrew settings`` and ``propose --set``, in process: a crew renames itself by a passed
proposal, never by one member alone; a congregation member edits directly; the JSON keys are
those of docs/cli.md; a refusal is one line and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_cli_spaces import _no_meshcrew_env, cli, cli_json, crew, record_count, refused, share

__all__ = ["_no_meshcrew_env", "crew"]  # fixtures

SETTINGS_KEYS = {"name", "purpose", "rhythm", "quorum", "edit_by_proposal", "keep_checkins",
                 "keep_posts"}
CHANGE_KEYS = {"id", "space", "author", "author_name", "ts", "by", "by_title", "change"}
DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_a_crew_renames_itself_by_consent(crew: tuple[str, list[Path]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    shown = cli_json(capsys, bob, "settings", "Moon")
    assert set(shown["settings"]) == SETTINGS_KEYS
    assert (shown["settings"]["name"], shown["history"]) == ("Moon", [])
    held = record_count(ada)
    assert "by consent" in refused(capsys, ada, "settings", "Moon", "--set", "name=Sun")
    assert "not a setting" in refused(capsys, ada, "settings", "Moon", "--set", "colour=red")
    assert "quorum is a percentage" in refused(capsys, ada, "propose", "Moon", "--title", "x",
                                               "--set", "quorum=0")
    assert record_count(ada) == held
    pid = cli_json(capsys, ada, "propose", "Moon", "--title", "Call us Sun, meet Thursdays",
                   "--set", "name=Sun", "--set", "rhythm=weekly:thu")["id"]
    share(capsys, space, ada, bob, cy)
    [entry] = cli_json(capsys, bob, "proposals", "Moon")["proposals"]
    assert entry["change"]["name"] == "Sun"
    assert entry["change"]["rhythm"].startswith("weekly:thu")
    assert entry["carried_out"] is False
    assert "changes the settings: name = Sun" in cli(capsys, bob, "proposals", "Moon")
    cli(capsys, bob, "answer", pid[:10], "consent")
    share(capsys, space, ada, bob, cy)
    cli(capsys, cy, "answer", pid[:10], "consent")  # passes: Cy's command makes the change
    share(capsys, space, ada, bob, cy)
    for home in (ada, bob, cy):
        shown = cli_json(capsys, home, "settings", "Sun")
        assert shown["settings"]["name"] == "Sun"
        [change] = shown["history"]
        assert set(change) == CHANGE_KEYS
        assert (change["author_name"], change["by"], change["by_title"]) == (
            "Cy", pid, "Call us Sun, meet Thursdays")
    assert "Cy: name = Sun" in cli(capsys, ada, "settings", "Sun")
    assert "made already" in refused(capsys, ada, "settings", "Sun", "--by", pid[:10])


def test_a_congregation_member_edits_directly(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "ada"
    cli(capsys, home, "init", "--name", "Ada")
    cli(capsys, home, "crew", "create", "Hall", "--kind", "congregation")
    made = cli_json(capsys, home, "settings", "Hall", "--set", "purpose=neighbours who grow food",
                    "--set", "quorum=60%")
    assert set(made) == {"id", "space"}
    shown = cli_json(capsys, home, "settings", "Hall")["settings"]
    assert (shown["purpose"], shown["quorum"], shown["edit_by_proposal"]) == (
        "neighbours who grow food", 60, False)
    cli(capsys, home, "settings", "Hall", "--set", "edits=proposal")
    assert "by consent" in refused(capsys, home, "settings", "Hall", "--set", "name=Ours")
    assert cli_json(capsys, home, "spaces")["spaces"][0]["quorum"] == 60


def test_the_settings_keys_are_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("### `meshcrew settings"):]
    section = section[:section.index("\n### ")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert documented >= SETTINGS_KEYS | CHANGE_KEYS
    proposals = doc[doc.index("### `meshcrew proposals"):]
    assert "| `change` |" in proposals
    assert "| `carried_out` |" in proposals
