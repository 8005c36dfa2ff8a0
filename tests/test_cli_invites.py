"""``meshcrew invites`` and ``meshcrew invite revoke``, in process; the JSON keys are those of
docs/cli.md, and a refusal is one line that changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshcrew.cli import main
from test_cli_spaces import _no_meshcrew_env, cli, cli_json, crew, record_count, refused, share

__all__ = ["_no_meshcrew_env", "crew"]  # fixtures

INVITE_KEYS = {"id", "space", "inviter", "inviter_name", "uses", "used", "expires_ms",
               "revoked", "open", "ts"}
DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_revoking_by_code_or_id_and_listing(crew: tuple[str, list[Path]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    made = cli_json(capsys, ada, "invite", "Moon", "--uses", "2")
    second = cli_json(capsys, ada, "invite", "Moon")
    share(capsys, space, ada, bob, cy)
    listing = cli_json(capsys, bob, "invites", "Moon", "--open")["invites"]
    assert all(set(row) == INVITE_KEYS for row in listing)
    assert [(r["uses"], r["used"], r["open"]) for r in listing] == [(1, 0, True), (2, 0, True)]
    done = cli_json(capsys, bob, "invite", "revoke", made["code"])
    assert done["space"] == space
    assert set(done) == {"id", "space", "invite"}
    second_id = next(r["id"] for r in listing if r["uses"] == 1)
    cli(capsys, cy, "invite", "revoke", second_id[:10])
    share(capsys, space, ada, bob, cy)
    assert cli_json(capsys, ada, "invites", "Moon", "--open")["invites"] == []
    rows = cli_json(capsys, ada, "invites", "Moon")["invites"]
    assert {r["id"]: r["revoked"] for r in rows}[second_id] is True
    assert "revoked" in cli(capsys, ada, "invites", "Moon")
    held = record_count(ada)
    assert "revoked already" in refused(capsys, ada, "invite", "revoke", made["code"])
    assert "is not an invite id" in refused(capsys, ada, "invite", "revoke", "nope")
    assert "unrecognized argument" in refused(capsys, ada, "invite", "Moon", "extra", status=2)
    assert record_count(ada) == held
    assert second["code"] != made["code"]


def test_the_invite_keys_are_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("### `meshcrew invites"):]
    section = section[:section.index("\n### ")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert documented >= INVITE_KEYS


def test_an_invite_made_without_a_node_says_the_code_carries_no_address(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """A joiner elsewhere could not reach such a code's maker; it said nothing of it."""
    _, (ada, _, _) = crew
    assert main(["--home", str(ada), "invite", "Moon"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("mc1-")
    assert len(out.splitlines()) == 1
    assert err.startswith("meshcrew: note: no node runs here, so the code carries no address")
    assert "-o FILE" in err
    cli(capsys, ada, "invite", "Moon", "-o", tmp_path / "records")  # the file is the way
    assert capsys.readouterr().err == ""


def test_a_join_from_a_file_of_another_space_says_so_at_once(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """It imported the file, then looked for the inviter on the network for a minute and
    failed, advising to use the export file, which was given."""
    _, (ada, _, _) = crew
    dee = tmp_path / "dee"
    cli(capsys, dee, "init", "--name", "Dee")
    code = cli_json(capsys, ada, "invite", "Moon")["code"]
    cli(capsys, ada, "crew", "create", "Sun")
    cli(capsys, ada, "export", "Sun", "-o", tmp_path / "sun")
    error = refused(capsys, dee, "join", code, "--from", tmp_path / "sun")
    assert f"{tmp_path / 'sun'} holds no record of the space this code invites to" in error


def test_a_join_from_a_file_older_than_the_invite_says_so_at_once(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """The file holds the space but not the invite: the join would look for the inviter on the
    network, which the file was meant to spare."""
    _, (ada, _, _) = crew
    dee = tmp_path / "dee"
    cli(capsys, dee, "init", "--name", "Dee")
    cli(capsys, ada, "export", "Moon", "-o", tmp_path / "old")
    code = cli_json(capsys, ada, "invite", "Moon")["code"]
    error = refused(capsys, dee, "join", code, "--from", tmp_path / "old")
    assert error == (f"meshcrew: error: {tmp_path / 'old'} was written before this invite was "
                     "made; ask the inviter for the file written with the code (meshcrew invite "
                     "SPACE -o FILE).")
