"""Retention through the CLI: ``leave --expire-posts`` takes the leaver's posts with them (their
own node deletes them at once; the others' at their next pass, see test_service_retention)."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli_spaces import _no_meshcrew_env, cli, cli_json, crew, share

__all__ = ["_no_meshcrew_env", "crew"]  # fixtures


def test_leave_expire_posts_deletes_the_leavers_posts_at_once(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    cli(capsys, bob, "checkin", space, "--text", "BOB-TAKES-THIS-3d7")
    cli(capsys, cy, "checkin", space, "--text", "CY-LEAVES-THIS-3d7")
    share(capsys, space, ada, bob, cy)
    taken = cli_json(capsys, bob, "leave", space, "--expire-posts")
    assert taken["expire_posts"] is True
    stays = cli_json(capsys, cy, "leave", space)
    assert stays["expire_posts"] is False
    bobs = {r.get("text") for r in cli_json(capsys, bob, "log", space)["records"]}
    cys = {r.get("text") for r in cli_json(capsys, cy, "log", space)["records"]}
    assert "BOB-TAKES-THIS-3d7" not in bobs
    assert "CY-LEAVES-THIS-3d7" in cys
    assert "Your past posts expire now" in cli(capsys, ada, "leave", space, "--expire-posts")
