"""The space commands of the CLI: the whole journey through real processes, the rest in-process.

The journey runs ``python -m meshcrew`` as a person would, with three home folders that pass
records by file (the offline join of docs/cli.md). The other tests call ``main([...])`` and
check the ``--json`` keys against docs/cli.md and that bad input gets one line and changes
nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshcrew import spaces
from meshcrew.cli import main
from meshcrew.home import Home
from meshcrew.identity import load
from meshcrew.records import NEW_SPACE, sign_record
from meshcrew.service import write_records
from meshcrew.store import Replica

SPACE_KEYS = {"id", "kind", "name", "purpose", "rhythm", "parent", "history", "members",
              "my_status", "waiting_for_keys", "needs_checkin", "founder", "created_ts",
              "last_ts", "quorum"}
MEMBER_KEYS = {"key", "name", "fingerprint", "bio", "status", "joined_ts", "invited_by", "is_me",
               "is_founder"}
RECORD_KEYS = {"id", "space", "kind", "author", "author_name", "seq", "ts"}
REMOVAL_KEYS = {"id", "space", "member", "member_name", "proposer", "consents", "electorate",
                "needed", "effective", "ts"}
REJECT_KEYS = {"record_id", "space", "source", "reason", "sentence", "detail", "author",
               "sender", "at_ms"}
IMPORT_KEYS = {"accepted", "pending", "duplicates", "rejected", "refused", "spaces", "rotated",
               "rejects", "file", "exported"}


@pytest.fixture(autouse=True)
def _no_meshcrew_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MESHCREW_"):
            monkeypatch.delenv(name)


def run_cli(home: Path, *args: str | Path) -> str:
    """Run ``python -m meshcrew --home HOME ARGS``; return stdout, failing on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    done = subprocess.run([sys.executable, "-m", "meshcrew", "--home", str(home),
                           *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def test_three_homes_join_by_file_check_in_and_read_the_same_log(tmp_path: Path) -> None:
    ada, bob, cy = (tmp_path / name for name in ("ada", "bob", "cy"))
    for home, name in ((ada, "Ada"), (bob, "Bob"), (cy, "Cy")):
        run_cli(home, "init", "--name", name)
    space = run_cli(ada, "crew", "create", "Moon", "--purpose", "weekly practice",
                    "--rhythm", "weekly:mon+00:00").strip()
    assert len(space) == 64

    # Bob joins by the offline flow: four commands, three files.
    code = run_cli(ada, "invite", "Moon", "-o", tmp_path / "moon.mcr").splitlines()[0]
    assert code.startswith("mc1-")
    joined = run_cli(bob, "join", code, "--from", tmp_path / "moon.mcr", "-o",
                     tmp_path / "join.mcr")
    assert "rotates the keys" in joined
    assert "Rotated the keys of Moon" in run_cli(ada, "import", tmp_path / "join.mcr", "-o",
                                                 tmp_path / "welcome.mcr")
    run_cli(bob, "import", tmp_path / "welcome.mcr")

    # Cy joins on Bob's invite (JSON this time).
    invite = json.loads(run_cli(bob, "invite", space[:8], "--json", "-o", tmp_path / "m2.mcr"))
    assert invite["space"] == space
    joined_json = json.loads(run_cli(cy, "join", invite["code"], "--from", tmp_path / "m2.mcr",
                                     "-o", tmp_path / "j2.mcr", "--json"))
    assert joined_json["summary"]["waiting_for_keys"] is True
    assert joined_json["imported"]["accepted"] > 0
    reply = json.loads(run_cli(bob, "import", tmp_path / "j2.mcr", "-o", tmp_path / "w2.mcr",
                               "--json"))
    assert reply["rotated"] == [space]
    run_cli(cy, "import", tmp_path / "w2.mcr")

    bob_in = run_cli(bob, "checkin", "Moon", "--text", "arriving tired", "--energy", "2",
                     "--compass", "belonging=4", "--compass", "time=1",
                     "--ask", "someone to pair on the grant?").strip()
    run_cli(cy, "checkin", "moon", "--text", "bright today", "--energy", "5")

    def exchange(senders: list[Path]) -> None:
        for sender in senders:
            run_cli(sender, "export", "Moon", "-o", tmp_path / f"{sender.name}.mcr")
            for receiver in (ada, bob, cy):
                if receiver != sender:
                    run_cli(receiver, "import", tmp_path / f"{sender.name}.mcr")

    exchange([ada, bob, cy])
    run_cli(ada, "reply", bob_in[:8], "--text", "I can pair on Thursday")
    exchange([ada])

    shown = [json.loads(run_cli(home, "log", "Moon", "--json")) for home in (ada, bob, cy)]
    assert shown[0] == shown[1] == shown[2]
    records = shown[0]["records"]
    assert all(set(record) >= RECORD_KEYS for record in records)
    kinds = [r["kind"] for r in records]
    assert kinds.count("join") == 2
    assert kinds.count("profile") == 3
    assert "locked" not in kinds
    checkin = next(r for r in records if r["id"] == bob_in)
    assert (checkin["author_name"], checkin["energy"], checkin["compass"], checkin["ask"]) == (
        "Bob", 2, {"belonging": 4, "time": 1}, "someone to pair on the grant?")
    [answer] = [r for r in records if r["kind"] == "reply"]
    assert (answer["to"], answer["author_name"]) == (bob_in, "Ada")
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)
    as_text = run_cli(ada, "log", "Moon")  # in words a member knows (it said "epoch 2")
    assert "rotated the keys (now 2 members hold them)" in as_text
    assert "rotated the keys (now 3 members hold them)" in as_text
    assert "epoch" not in as_text


# ---------------------------------------------------------------------------------------------
# In-process


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str | Path) -> str:
    """Run ``main`` for a home; return stdout, failing on a non-zero exit."""
    status = main(["--home", str(home), *map(str, args)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def cli_json(capsys: pytest.CaptureFixture[str], home: Path, *args: str | Path) -> Any:
    """Run ``main`` with ``--json`` and parse what it printed."""
    return json.loads(cli(capsys, home, *args, "--json"))


def refused(capsys: pytest.CaptureFixture[str], home: Path, *args: str | Path,
            status: int = 1) -> str:
    """Run ``main``, expect a refusal; return its one error line."""
    assert main(["--home", str(home), *map(str, args)]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("meshcrew: error: ")
    return lines[0]


def record_count(home: Path) -> int:
    with Replica.open(Home(home), read_only=True) as replica:
        return replica.record_count()


def offline_join(capsys: pytest.CaptureFixture[str], inviter: Path, joiner: Path,
                 space: str) -> None:
    """The four-command offline join of docs/cli.md."""
    folder = inviter.parent
    code = cli(capsys, inviter, "invite", space, "-o", folder / "out.mcr").splitlines()[0]
    cli(capsys, joiner, "join", code, "--from", folder / "out.mcr", "-o", folder / "join.mcr")
    cli(capsys, inviter, "import", folder / "join.mcr", "-o", folder / "back.mcr")
    cli(capsys, joiner, "import", folder / "back.mcr")


def share(capsys: pytest.CaptureFixture[str], space: str, *homes: Path) -> None:
    """Every home sends the space to every other."""
    for sender in homes:
        out = sender.parent / f"{sender.name}.mcr"
        cli(capsys, sender, "export", space, "-o", out)
        for receiver in homes:
            if receiver != sender:
                cli(capsys, receiver, "import", out)


@pytest.fixture
def crew(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[Path]]:
    """A crew "Moon" of Ada, Bob and Cy (invited by Ada), every home up to date."""
    homes = [tmp_path / name for name in ("ada", "bob", "cy")]
    for home in homes:
        cli(capsys, home, "init", "--name", home.name.title())
    space = cli(capsys, homes[0], "crew", "create", "Moon").strip()
    for joiner in homes[1:]:
        offline_join(capsys, homes[0], joiner, space)
    share(capsys, space, *homes)
    return space, homes


def test_json_of_spaces_members_and_rhythm(crew: tuple[str, list[Path]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, _cy) = crew
    [moon] = cli_json(capsys, bob, "spaces")["spaces"]
    assert set(moon) == SPACE_KEYS
    assert (moon["id"], moon["name"], moon["members"], moon["my_status"]) == (
        space, "Moon", 3, "active")
    listed = cli_json(capsys, ada, "members", "Moon")
    assert [set(m) for m in listed["members"]] == [MEMBER_KEYS] * 3
    assert sorted(m["name"] for m in listed["members"]) == ["Ada", "Bob", "Cy"]
    assert listed["removals"] == []
    cli(capsys, bob, "checkin", "Moon", "--text", "hi", "--energy", "4")
    shown = cli_json(capsys, bob, "rhythm", "Moon")
    assert [c["author_name"] for c in shown["checkins"]] == ["Bob"]
    assert sorted(m["name"] for m in shown["missing"]) == ["Ada", "Cy"]
    assert list(shown["energy"].values()) == [[[shown["checkins"][0]["ts"], 4]]]
    text = cli(capsys, bob, "rhythm", "Moon")
    assert "not yet" in text
    assert "▄" in text
    assert "Moon" in cli(capsys, bob, "spaces")


def test_removal_by_consent_through_the_cli(crew: tuple[str, list[Path]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    proposed = cli_json(capsys, ada, "remove", "Moon", "Cy")
    assert set(proposed["removal"]) == REMOVAL_KEYS
    assert (proposed["removal"]["needed"], proposed["removal"]["effective"]) == (2, False)
    share(capsys, space, ada, bob, cy)
    assert "1 of 2 consents" in cli(capsys, bob, "members", "Moon")
    line = refused(capsys, cy, "consent", "Moon", proposed["id"][:8])
    assert "own removal" in line
    consented = cli_json(capsys, bob, "consent", "Moon", "cy")  # named by the member
    assert consented["removal"]["effective"] is True
    share(capsys, space, ada, bob, cy)
    statuses = {m["name"]: m["status"] for m in cli_json(capsys, cy, "members", "Moon")["members"]}
    assert statuses == {"Ada": "active", "Bob": "active", "Cy": "removed"}
    assert "removed" in refused(capsys, cy, "checkin", "Moon", "--text", "hello?")


def test_leave_then_posts_are_sealed_to_the_others(crew: tuple[str, list[Path]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    assert "You left Moon" in cli(capsys, cy, "leave", "Moon")
    share(capsys, space, ada, bob, cy)
    cli(capsys, ada, "checkin", "Moon", "--text", "after Cy left")
    share(capsys, space, ada, bob, cy)
    cy_log = cli_json(capsys, cy, "log", space[:6])["records"]
    assert "after Cy left" not in json.dumps(cy_log)
    assert [r["kind"] for r in cy_log].count("locked") == 1
    assert "after Cy left" in json.dumps(cli_json(capsys, bob, "log", "Moon"))
    [moon] = cli_json(capsys, cy, "spaces")["spaces"]
    assert moon["my_status"] == "left"
    assert "to come back, ask a member for a new invite" in refused(
        capsys, cy, "checkin", space, "--text", "back?")


def test_an_outsider_holding_a_space_is_told_how_to_join(
        crew: tuple[str, list[Path]], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    space, (ada, _, _) = crew
    dee = tmp_path / "dee"
    cli(capsys, dee, "init", "--name", "Dee")
    cli(capsys, ada, "export", "Moon", "-o", tmp_path / "moon")
    cli(capsys, dee, "import", tmp_path / "moon")
    assert "ask a member for an invite (meshcrew join CODE)" in refused(
        capsys, dee, "checkin", space, "--text", "hello?")
    # not told to wait for keys that will never come, nor the name meant for members
    assert "(locked: not a member)" in cli(capsys, dee, "spaces")
    for command in ("rhythm", "settings"):
        assert refused(capsys, dee, command, space) == (
            "meshcrew: error: You are not a member of this space; to join it, ask a member for "
            "an invite (meshcrew join CODE).")


def test_board_posts_and_followups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ada = tmp_path / "ada"
    cli(capsys, ada, "init", "--name", "Ada")
    cli(capsys, ada, "crew", "create", "Hall", "--kind", "congregation", "--rhythm", "daily")
    ask = cli(capsys, ada, "ask", "Hall", "--title", "Need a venue", "--text", "for 20").strip()
    cli(capsys, ada, "offer", "Hall", "--title", "Spare chairs")
    cli(capsys, ada, "gathering", "Hall", "--title", "Spring meet", "--when",
        "2099-04-01 18:00", "--where", "the library")
    cli(capsys, ada, "followup", ask[:8], "--text", "found one", "--closes")
    cli(capsys, ada, "crew", "create", "Moon", "--in", "Hall")
    board = cli_json(capsys, ada, "board", "Hall")
    assert [(i["title"], i["closed"], len(i["followups"])) for i in board["items"]] == [
        ("Need a venue", True, 1), ("Spare chairs", False, 0)]
    assert [g["title"] for g in board["gatherings"]] == ["Spring meet"]
    assert "Spring meet" in cli(capsys, ada, "board", "Hall")
    moon = next(s for s in cli_json(capsys, ada, "spaces")["spaces"] if s["name"] == "Moon")
    hall = next(s for s in cli_json(capsys, ada, "spaces")["spaces"] if s["name"] == "Hall")
    assert moon["parent"] == hall["id"]
    assert hall["rhythm"].startswith("daily")
    log_text = cli(capsys, ada, "log", "Hall")
    assert "gathering 'Spring meet'" in log_text
    assert "follow-up on" in log_text


def test_bad_input_gets_one_line_and_changes_nothing(crew: tuple[str, list[Path]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, _cy) = crew
    post = cli(capsys, bob, "checkin", "Moon", "--text", "hi").strip()
    code = cli(capsys, ada, "invite", "Moon").strip()
    before = record_count(ada)
    damaged = code[:-3] + ("a" if code[-3] != "a" else "b") + code[-2:]
    for args, fragment in [
        (("join", damaged), "This code is damaged"),
        (("join", "not-a-code"), "not a meshcrew invite code"),
        (("join", code), "already a member"),
        (("log", "Venus"), "No space matches 'Venus'"),
        (("checkin", "Moon", "--text", "hi", "--energy", "7"),
         "energy is not a whole number from 1 to 5"),
        (("checkin", "Moon", "--text", "hi", "--compass", "courage=3"),
         "'courage' is not a compass scale"),
        (("checkin", "Moon", "--text", "hi", "--compass", "belonging"), "belonging=4"),
        (("reply", "ffff", "--text", "x"), "No post matches 'ffff'"),
        (("reply", post[:2], "--text", "x"), "at least 4"),
        (("react", space[:8], "💚"), "No post matches"),
        (("invite", "Moon", "--expires", "soon"), "not a duration"),
        (("invite", "Moon", "--uses", "0"), "1 to 500"),
        (("crew", "create", "Mars", "--rhythm", "monthly"), "not daily, weekly"),
        (("crew", "create", "Mars", "--in", "Moon"), "only belong to a congregation"),
        (("remove", "Moon", "Ada"), "To leave a space, leave it"),
        (("remove", "Moon", "Dee"), "No member matches 'Dee'"),
        (("export", "-o", ada.parent / "x.mcr"), "or give --all"),
        (("import", ada.parent / "absent.mcr"), "Cannot read"),
        (("rejects", "--limit", "0"), "at least 1"),
        (("gathering", "Moon", "--title", "Old", "--when", "0001-01-01 00:00"),
         "too far from today"),
        (("gathering", "Moon", "--title", "Old", "--when", "1969-12-31T23:00+00:00"),
         "too far from today"),
    ]:
        assert fragment in refused(capsys, ada, *args), args
    assert record_count(ada) == before
    # A damaged code is refused before the file given with it is imported.
    dee = ada.parent / "dee"
    cli(capsys, dee, "init", "--name", "Dee")
    cli(capsys, ada, "export", "Moon", "-o", ada.parent / "moon.mcr")
    assert "This code is damaged" in refused(capsys, dee, "join", damaged, "--from",
                                             ada.parent / "moon.mcr")
    assert cli_json(capsys, dee, "spaces")["spaces"] == []
    assert refused(capsys, ada, "crew", status=2)  # a group without its command: usage
    assert not (ada.parent / "x.mcr").exists()


def test_ambiguous_names_and_prefixes(crew: tuple[str, list[Path]], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _space, (ada, _bob, _cy) = crew
    cli(capsys, ada, "crew", "create", "moon")
    assert "'Moon' matches 2 spaces" in refused(capsys, ada, "log", "Moon")
    # Two spaces whose ids share their first four hex digits: found by signing many geneses.
    key = load(Home(ada).key_file).signing_key
    seen: dict[str, bytes] = {}
    pair: list[bytes] = []
    for n in range(5000):
        made = spaces.create_space(key, spaces.SpaceKind.CREW, spaces.SpaceMeta(f"S{n}"),
                                   os.urandom)
        genesis = sign_record(key, kind=made.kind, space=NEW_SPACE, seq=1, prev=None,
                              ts=1_767_571_200_000 + n, body=made.body)
        prefix = genesis.id.hex()[:4]
        if prefix in seen:
            pair = [seen[prefix], genesis.raw]
            break
        seen[prefix] = genesis.raw
    assert pair, "no two ids shared four hex digits"
    write_records(tmp_path / "pair.mcr", pair)
    cli(capsys, ada, "import", tmp_path / "pair.mcr")
    line = refused(capsys, ada, "members", prefix)
    assert f"'{prefix}' matches 2 spaces" in line
    assert "give more of the id" in line
    assert cli_json(capsys, ada, "members", pair_id(pair[1]).hex()[:12])["space"] == \
        pair_id(pair[1]).hex()


def pair_id(raw: bytes) -> bytes:
    """The id of an encoded record."""
    from meshcrew.records import record_id

    return record_id(raw)


def test_rejects_and_import_counts(crew: tuple[str, list[Path]], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, _cy) = crew
    cli(capsys, bob, "export", "Moon", "-o", tmp_path / "bob.mcr")
    from meshcrew.service import read_records

    raws = read_records(tmp_path / "bob.mcr")
    damaged = bytearray(raws[-1])
    damaged[-1] ^= 1
    write_records(tmp_path / "bad.mcr", [*raws[:-1], bytes(damaged)])
    report = cli_json(capsys, ada, "import", tmp_path / "bad.mcr")
    assert set(report) == IMPORT_KEYS
    assert (report["accepted"], report["rejected"]) == (0, 1)
    assert report["duplicates"] == len(raws) - 1
    assert report["rejects"][0]["reason"] == "bad_signature"
    shown = cli_json(capsys, ada, "rejects")["rejects"]
    assert [set(r) for r in shown] == [REJECT_KEYS]
    assert (shown[0]["reason"], shown[0]["sender"], shown[0]["source"]) == (
        "bad_signature", "file:bad.mcr", "store")
    assert "bad_signature" in cli(capsys, ada, "rejects")
    # A limit beyond any log's size lists everything (it once overflowed SQLite's integers).
    assert cli_json(capsys, ada, "rejects", "--limit", str(10**30))["rejects"] == shown
    assert cli_json(capsys, ada, "rejects", "Moon")["rejects"] == []  # bad_signature names no space
    everything = cli_json(capsys, ada, "export", "--all", "-o", tmp_path / "all.mcr")
    assert everything["spaces"] == [space]
    assert everything["records"] == len(read_records(tmp_path / "all.mcr"))


def test_profile_crew_card_and_looking_for_crew(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ada = tmp_path / "ada"
    cli(capsys, ada, "init", "--name", "Ada")
    hall = cli(capsys, ada, "crew", "create", "Hall", "--kind", "congregation").strip()
    cli(capsys, ada, "crew", "create", "Sun", "--in", "Hall")
    card = cli_json(capsys, ada, "crew", "card", "Sun", "--open", "--note", "welcoming")
    assert card["space"] == hall  # the card goes to the congregation, not the crew
    cli(capsys, ada, "looking-for-crew", "Hall", "--note", "evenings")
    board = cli_json(capsys, ada, "board", "Hall")
    [shown] = board["crew_cards"]
    assert (shown["id"], shown["name"], shown["open"], shown["note"]) == (
        card["id"], "Sun", True, "welcoming")
    assert [(s["author_name"], s["note"]) for s in board["looking_for_crew"]] == [
        ("Ada", "evenings")]
    cli(capsys, ada, "crew", "card", "Sun", "--closed")
    cli(capsys, ada, "looking-for-crew", "Hall", "--stop")
    board = cli_json(capsys, ada, "board", "Hall")
    assert [c["open"] for c in board["crew_cards"]] == [False]  # the latest card counts
    assert board["looking_for_crew"] == []

    cli(capsys, ada, "profile", "Sun", "--bio", "likes tea")  # the name stays
    cli(capsys, ada, "profile", "Sun", "--name", "Ada L.")  # the bio stays
    [me] = cli_json(capsys, ada, "members", "Sun")["members"]
    assert (me["name"], me["bio"]) == ("Ada L.", "likes tea")
    assert cli_json(capsys, ada, "members", "Hall")["members"][0]["name"] == "Ada"

    for args, fragment in [
        (("crew", "card", "Hall", "--open"), "belongs to no congregation"),
        (("looking-for-crew", "Sun"), "Sun is a crew: a looking-for-crew note is for a whole "
         "congregation; post it in Hall, the congregation Sun belongs to."),
        (("profile", "Sun"), "Give --name, --bio or both"),
        (("profile", "Sun", "--bio", "x" * 300), "bio is longer than 280"),
    ]:
        assert fragment in refused(capsys, ada, *args), args
    assert "--open --closed" in refused(capsys, ada, "crew", "card", "Sun", status=2)


def test_rotate_seals_new_keys_once_after_a_departure(crew: tuple[str, list[Path]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    space, (ada, bob, cy) = crew
    assert cli_json(capsys, ada, "rotate", "Moon")["rotated"] == []
    assert "are current" in cli(capsys, ada, "rotate", "Moon")
    cli(capsys, cy, "leave", "Moon")
    share(capsys, space, ada, bob, cy)
    made = cli_json(capsys, ada, "rotate", "Moon")
    assert made["space"] == space
    assert len(made["rotated"]) == 1
    assert cli_json(capsys, ada, "rotate", "Moon")["rotated"] == []
    keys = [r for r in cli_json(capsys, ada, "log", "Moon")["records"] if r["kind"] == "keys"]
    assert (keys[-1]["id"], keys[-1]["recipients"]) == (made["rotated"][0], 2)
    assert "You have left" in refused(capsys, cy, "rotate", "Moon")
