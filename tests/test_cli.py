"""The command line: init, whoami, doctor; one-line errors; exit codes; the --json contract.

A few tests run ``python -m meshcrew`` in a real subprocess (as a person would); the rest call
``meshcrew.cli.main`` in-process, which is faster and lets a test lower the passphrase KDF cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pty
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from meshcrew import __version__, identity
from meshcrew.cli import build_parser, main
from meshcrew.cli.parsing import EXAMPLES
from meshcrew.home import Home

WHOAMI_KEYS = {"name", "key", "fingerprint", "peer_id"}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m meshcrew ARGS`` with no MESHCREW_* variables in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    return subprocess.run([sys.executable, "-m", "meshcrew", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("meshcrew: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home folder made once by a real ``meshcrew init``; tests get copies of it."""
    path = tmp_path_factory.mktemp("template") / "home"
    done = run_cli("--home", path, "init", "--name", "Ada")
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def ada_home(template_home: Path, tmp_path: Path) -> Path:
    """A fresh copy (modes kept) of a home folder holding Ada's plain key file."""
    path = tmp_path / "home"
    shutil.copytree(template_home, path)
    return path


@pytest.fixture(autouse=True)
def _no_meshcrew_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MESHCREW_"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------------------------------------
# Through a real subprocess


def test_init_creates_a_private_home_and_key(tmp_path: Path) -> None:
    home = tmp_path / "nested" / "home"
    done = run_cli("--home", home, "init", "--name", "  Ada Lovelace ")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    person = identity.load(Home(home).key_file)
    assert person.name == "Ada Lovelace"
    assert "Ada Lovelace" in done.stdout
    assert person.fingerprint in done.stdout
    assert str(home) in done.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(Home(home).key_file.stat().st_mode) == 0o600


def test_whoami_json_and_text(ada_home: Path) -> None:
    done = run_cli("--home", ada_home, "whoami", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(shown) == WHOAMI_KEYS
    person = identity.load(Home(ada_home).key_file)
    assert shown == {"name": "Ada", "key": person.public_key.hex(),
                     "fingerprint": person.fingerprint, "peer_id": person.peer_id}

    text = run_cli("whoami", "--home", ada_home)  # global options also go after the command
    assert text.returncode == 0, text.stderr
    for value in shown.values():
        assert value in text.stdout


def test_whoami_refuses_a_key_file_open_to_others(ada_home: Path) -> None:
    key_file = Home(ada_home).key_file
    key_file.chmod(0o644)
    done = run_cli("--home", ada_home, "whoami")
    assert done.returncode == 1
    assert done.stdout == ""
    assert_one_line_error(done.stderr, f"chmod 600 {key_file}")


def test_init_twice_is_refused_and_keeps_the_key(ada_home: Path) -> None:
    key_file = Home(ada_home).key_file
    before = key_file.read_bytes()
    done = run_cli("--home", ada_home, "init", "--name", "Bob")
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "already holds an identity")
    assert key_file.read_bytes() == before
    assert sorted(p.name for p in ada_home.iterdir()) == [key_file.name]


def test_bad_name_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    done = run_cli("--home", tmp_path / "home", "init", "--name", "tab\there")
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "control characters")
    assert not (tmp_path / "home").exists()


def test_missing_home_says_how_to_start(tmp_path: Path) -> None:
    done = run_cli("--home", tmp_path / "nowhere", "whoami")
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "meshcrew init --name")
    assert not (tmp_path / "nowhere").exists()


def test_usage_error_is_one_line_with_status_2(tmp_path: Path) -> None:
    done = run_cli("--home", tmp_path, "init")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "--name", "meshcrew init --help")


def test_doctor_on_a_fresh_home_is_ok(ada_home: Path) -> None:
    done = run_cli("--home", ada_home, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[:2] for line in lines] == [
        ["ok", " home"], ["ok", " key_file"], ["ok", " identity"], ["ok", " replica"]]


def test_doctor_reports_a_key_file_open_to_others(ada_home: Path) -> None:
    key_file = Home(ada_home).key_file
    key_file.chmod(0o644)
    done = run_cli("--home", ada_home, "doctor", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name["home"]["ok"] is True
    assert by_name["key_file"]["ok"] is False
    assert f"chmod 600 {key_file}" in by_name["key_file"]["detail"]
    assert "identity" not in by_name  # not loaded from an unsafe file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o644, "doctor changes nothing"


# ---------------------------------------------------------------------------------------------
# In-process


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"meshcrew {__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("init", "whoami", "doctor"):
        assert command in out


@pytest.mark.parametrize("argv", [["bogus"], ["whoami", "--bogus"], ["init", "--name"],
                                  ["--home"]])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err)


@pytest.mark.parametrize(("argv", "see"), [
    (["react", "3f9a", "heard", "--loud"], "meshcrew react --help"),
    (["devices", "revoke", "AB12", "CD34"], "meshcrew devices revoke --help"),
    (["--bogus"], "meshcrew --help"),
])
def test_an_unknown_option_points_to_its_commands_help(
        argv: list[str], see: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It pointed to meshcrew --help, which does not list the command's options."""
    assert main(argv) == 2
    assert capsys.readouterr().err.endswith(f"(see: {see})\n")


@pytest.mark.parametrize("argv", [["whoami"], ["--help"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(ada_home: Path,
                                                          argv: list[str]) -> None:
    """'meshcrew status | head -3' ended in a BrokenPipeError traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    with subprocess.Popen([sys.executable, "-m", "meshcrew", "--home", str(ada_home), *argv],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, text=True) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()  # the reader is gone before the command writes anything
        try:
            err = child.stderr.read()
            status = child.wait(timeout=60)
        finally:
            child.kill()  # by its own handle: a no-op once it has ended
    assert err == ""
    assert status in (0, 1)  # --help is printed inside argparse, whoami by the command


def on_a_terminal(*args: str | Path) -> str:
    """What ``python -m meshcrew ARGS`` prints with its stdout on a terminal (a pty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    ours, theirs = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "meshcrew", *map(str, args)], env=env,
                              stdin=subprocess.DEVNULL, stdout=theirs, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False)
    finally:
        os.close(theirs)
    out = b""
    try:
        while chunk := os.read(ours, 4096):
            out += chunk
    except OSError:  # EIO: nothing more, the writer has gone
        pass
    finally:
        os.close(ours)
    assert done.returncode == 0, done.stderr
    return out.decode().replace("\r\n", "\n")


def test_a_person_at_a_terminal_reads_what_was_done_a_script_the_id(ada_home: Path) -> None:
    """'crew create' and 'checkin' printed a bare 64-digit id, all a member saw of it."""
    made = on_a_terminal("--home", ada_home, "crew", "create", "Tuesday crew")
    assert re.fullmatch(r"Started Tuesday crew, a crew \(id [0-9a-f]{8}\)\. Invite people "
                        r"with: meshcrew invite 'Tuesday crew'\n", made), made
    said = on_a_terminal("--home", ada_home, "checkin", "Tuesday crew", "--text", "glad")
    assert re.fullmatch(r"Checked in \(id [0-9a-f]{8}; meshcrew log shows it\)\.\n", said), said
    piped = run_cli("--home", ada_home, "checkin", "Tuesday crew", "--text", "again")
    assert re.fullmatch(r"[0-9a-f]{64}\n", piped.stdout)  # for scripts, as before


def test_empty_home_option_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", "", "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, "--home")


def test_every_command_and_option_has_help() -> None:
    def check(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions}
                assert helped == set(action.choices), f"{where}: a command without a summary"
                for name, sub in action.choices.items():
                    assert sub.description, f"{where} {name}: no description"
                    check(sub, f"{where} {name}")
            else:
                assert action.help, f"{where}: {action.option_strings or action.dest} has no help"

    check(build_parser(), "meshcrew")


def example_lines(parser: argparse.ArgumentParser) -> list[str]:
    """The command lines under "examples:" in the parser's epilog."""
    if not (parser.epilog or "").startswith(EXAMPLES):
        return []
    lines = parser.epilog.splitlines()[1:] if parser.epilog else []
    return [line.strip() for line in itertools.takewhile(str.strip, lines)]


def every_parser(parser: argparse.ArgumentParser, where: str = "meshcrew"
                 ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield where, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, f"{where} {name}")


def test_the_examples_in_every_help_are_command_lines_that_parse(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A member copies an example from --help: it must be a valid command line, and the
    commands a member uses most have some."""
    with_examples = set()
    for where, parser in every_parser(build_parser()):
        for line in example_lines(parser):
            with_examples.add(where)
            words = shlex.split(line, comments=True)
            assert words[0] == "meshcrew", line
            if "--help" in words:
                with pytest.raises(SystemExit) as exited:
                    build_parser().parse_args(words[1:])
                assert exited.value.code == 0, line
            else:
                build_parser().parse_args(words[1:])  # a UsageError names what is wrong
            assert where.split()[1:] == words[1:len(where.split())] or where == "meshcrew", (
                f"{where} shows an example of another command: {line}")
    capsys.readouterr()
    assert {f"meshcrew {c}" for c in (
        "init", "crew create", "invite", "join", "checkin", "reply", "react", "ask", "offer",
        "gathering", "followup", "propose", "answer", "backup", "restore", "devices add",
        "devices revoke", "demo", "node")} <= with_examples
    assert "meshcrew" in with_examples


def test_no_help_uses_words_the_docs_do_not_explain_to_members() -> None:
    """'rotate' said 'Seal a new epoch key': epochs and the fold are words of the protocol
    (docs/protocol.md), not of the member's guide."""
    for where, parser in every_parser(build_parser()):
        words = set(re.findall(r"[a-z]+", parser.format_help().lower()))
        assert not words & {"epoch", "epochs", "fold", "folds"}, where


def test_help_shows_examples_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checkin", "--help"]) == 0
    out = capsys.readouterr().out
    assert ('\nexamples:\n  meshcrew checkin "Tuesday crew" --text "Tired but glad to be here" '
            "--energy 2\n") in out
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "With no command, meshcrew opens the app" in " ".join(top.split())
    assert "  meshcrew demo    # try it: a demo crew on this machine, and you in it\n" in top


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MESHCREW_HOME", str(tmp_path / "env-home"))
    assert main(["init", "--name", "Ada", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["home"] == str(tmp_path / "env-home")
    assert set(made) == WHOAMI_KEYS | {"home"}
    assert identity.load(Home(tmp_path / "env-home").key_file).public_key.hex() == made["key"]
    # --home wins over the environment.
    assert main(["--home", str(tmp_path / "other"), "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, str(tmp_path / "other"))


def test_init_refuses_a_home_open_to_others(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "shared"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    assert main(["--home", str(home), "init", "--name", "Ada"]) == 1
    assert_one_line_error(capsys.readouterr().err, f"chmod 700 {home}")
    assert list(home.iterdir()) == []


def test_init_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    assert main(["--home", str(tmp_path / "afile"), "init", "--name", "Ada"]) == 1
    assert_one_line_error(capsys.readouterr().err, "is a file")


@pytest.mark.parametrize("command", [["whoami"], ["spaces"], ["checkin", "Crew", "--text", "hi"]])
def test_a_home_path_that_is_a_file_is_called_one(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  command: list[str]) -> None:
    """Not 'No home folder ...; create one with: meshcrew init', which init then refuses."""
    (tmp_path / "afile").write_text("x")
    assert main(["--home", str(tmp_path / "afile"), *command]) == 1
    assert_one_line_error(capsys.readouterr().err, "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.usefixtures("fast_kdf")
@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_passphrase_file_round_trip(tmp_path: Path, ending: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    secret_file = tmp_path / "pass"
    secret_file.write_text("correct horse" + ending)
    assert main(["--home", str(home), "init", "--name", "Ada",
                 "--passphrase-file", str(secret_file)]) == 0
    assert identity.load(Home(home).key_file, passphrase=b"correct horse").name == "Ada"
    capsys.readouterr()

    assert main(["--home", str(home), "--passphrase-file", str(secret_file), "whoami",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Ada"


@pytest.mark.usefixtures("fast_kdf")
def test_passphrase_from_environment_and_its_refusals(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    right, wrong, empty = (tmp_path / name for name in ("right", "wrong", "empty"))
    right.write_text("correct horse\n")
    wrong.write_text("battery staple\n")
    empty.write_text("\n")
    monkeypatch.setenv("MESHCREW_PASSPHRASE_FILE", str(right))
    assert main(["--home", home, "init", "--name", "Ada"]) == 0
    assert main(["--home", home, "whoami"]) == 0
    capsys.readouterr()

    monkeypatch.delenv("MESHCREW_PASSPHRASE_FILE")
    assert main(["--home", home, "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, "--passphrase-file")
    assert main(["--home", home, "--passphrase-file", str(wrong), "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, "passphrase does not open")
    assert main(["--home", home, "--passphrase-file", str(empty), "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, "empty")
    assert main(["--home", home, "--passphrase-file", str(tmp_path / "absent"), "whoami"]) == 1
    assert_one_line_error(capsys.readouterr().err, "Cannot read the passphrase file")


def test_init_with_a_missing_passphrase_file_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "home"), "init", "--name", "Ada",
                 "--passphrase-file", str(tmp_path / "absent")]) == 1
    assert_one_line_error(capsys.readouterr().err, "passphrase file")
    assert not (tmp_path / "home").exists()


def test_keyboard_interrupt_exits_130_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(person: identity.Identity, path: Path, *, passphrase: bytes | None) -> None:
        raise KeyboardInterrupt

    # Interrupt at the slowest real step of init (sealing the key).
    monkeypatch.setattr(identity, "save", interrupted)
    assert main(["--home", str(tmp_path / "home"), "init", "--name", "Ada"]) == 130
    assert capsys.readouterr().err == ""


def test_every_command_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    for name in commands.choices:
        assert f"### `meshcrew {name}" in doc, f"docs/cli.md has no section for {name}"


def test_doctor_checks_a_real_replica_and_finds_a_damaged_one(
        ada_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meshcrew.store import Replica

    home = Home(ada_home)
    with Replica.open(home):
        pass
    assert main(["--home", str(ada_home), "doctor"]) == 0
    assert f"ok: replica: {home.replica_file} is intact" in capsys.readouterr().out

    home.replica_file.write_bytes(b"this is not an SQLite database" * 100)
    assert main(["--home", str(ada_home), "doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(check["name"], check["ok"]) for check in report["checks"]] == [
        ("home", True), ("key_file", True), ("identity", True), ("replica", False)]
    assert str(home.replica_file) in report["checks"][-1]["detail"]


def test_doctor_reports_replica_files_open_to_others(
        ada_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A replica made before meshcrew created it 0600 kept 0644; SQLite's -wal/-shm follow it."""
    from meshcrew.store import Replica

    home = Home(ada_home)
    Replica.open(home).close()
    home.replica_file.chmod(0o644)
    companions = [home.replica_file.with_name(home.replica_file.name + suffix)
                  for suffix in ("-wal", "-shm")]
    with Replica.open(home):  # a running writer: SQLite gives the -wal/-shm the file's mode
        files = [home.replica_file, *companions]
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}
        assert main(["--home", str(ada_home), "doctor", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is False
        replica = report["checks"][-1]
        assert replica["name"] == "replica"
        assert replica["ok"] is False
        assert replica["detail"].startswith("The replica is open to others: ")
        for f in files:
            assert f"{f} (mode 0644)" in replica["detail"]
        assert f"run: chmod 600 {' '.join(map(str, files))}" in replica["detail"]
        assert "damaged" not in replica["detail"]
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}, "doctor changes nothing"

        for f in files:  # what the sentence says to do
            f.chmod(0o600)
        assert main(["--home", str(ada_home), "doctor"]) == 0
        assert f"ok: replica: {home.replica_file} is intact (mode 0600)" in capsys.readouterr().out

    # With no writer, the companions are gone and only the file itself is checked.
    home.replica_file.chmod(0o640)
    assert not any(f.exists() for f in companions)
    assert main(["--home", str(ada_home), "doctor"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"problem: replica: The replica is open to others: {home.replica_file} (mode 0640); "
        f"run: chmod 600 {home.replica_file}")


def test_doctor_without_a_home_reports_only_that(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "nowhere"), "doctor"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"problem: home: no home folder at {tmp_path / 'nowhere'}; create one with: "
        "meshcrew init --name NAME"]
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.usefixtures("fast_kdf")
def test_doctor_needs_the_passphrase_to_check_a_sealed_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, secret_file = str(tmp_path / "home"), tmp_path / "pass"
    secret_file.write_text("pw\n")
    assert main(["--home", home, "--passphrase-file", str(secret_file), "init", "--name", "A"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "doctor"]) == 1
    assert "problem: identity:" in capsys.readouterr().out
    assert main(["--home", home, "--passphrase-file", str(secret_file), "doctor"]) == 0


def test_a_home_whose_key_file_is_lost_points_to_restore_not_init(
        ada_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key file is gone but the replica stays: init there would make an identity in none of
    its spaces, after which restore refuses the home folder (it holds another identity)."""
    from meshcrew.store import Replica

    home = Home(ada_home)
    Replica.open(home).close()
    home.key_file.unlink()
    replica = home.replica_file.read_bytes()
    for command in (["spaces"], ["whoami"], ["init", "--name", "Ada"],
                    ["init", "--link", "--wait", "1", "--listen", "/ip4/127.0.0.1/tcp/0"]):
        assert main(["--home", str(ada_home), *command]) == 1, command
        assert_one_line_error(capsys.readouterr().err, "holds a replica but no key file",
                              f"meshcrew --home {ada_home} restore FILE")
    assert not home.key_file.exists()
    assert home.replica_file.read_bytes() == replica
    assert main(["--home", str(ada_home), "doctor", "--json"]) == 1
    checks = {check["name"]: check for check in json.loads(capsys.readouterr().out)["checks"]}
    assert "restore FILE" in checks["key_file"]["detail"]


PEER = "12D3KooWMPMf6D2NcWbSboGKSrNazHxGV8zkTc4nmdDeYtGJy3TE"


@pytest.mark.parametrize(("argv", "fragment"), [
    (["node", "--bootstrap", "garbage"], "--bootstrap: 'garbage' is not a multiaddr ending in"),
    (["node", "--relay", "/ip4/10.0.0.1/tcp/4001"], "--relay: '/ip4/10.0.0.1/tcp/4001' is not"),
    (["node", "--sync-period", "-1"], "--sync-period: '-1' is not a number above zero"),
    (["node", "--sync-period", "0"], "--sync-period: '0' is not a number above zero"),
    (["node", "--carrier-quota", "nan"], "--carrier-quota: 'nan' is not a number above zero"),
    (["init", "--link", "--wait", "-1"], "--wait: '-1' is not a number above zero"),
])
def test_node_options_out_of_range_are_usage_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        fragment: str) -> None:
    """They ran a node that dialled nothing, or crashed with a traceback (a negative period
    reached trio: "`seconds` must be non-negative"). The home folder does not exist, so a check
    that lets one through ends in "No home folder" (status 1) instead of starting a node."""
    home = tmp_path / "none"
    assert main(["--home", str(home), *argv]) == 2
    assert_one_line_error(capsys.readouterr().err, fragment)
    assert not home.exists()


@pytest.mark.parametrize("addr", [f"/ip4/192.168.1.20/tcp/4001/p2p/{PEER}",
                                  f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}/p2p-circuit/p2p/{PEER}"])
def test_peer_addresses_pass_the_node_options_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], addr: str) -> None:
    assert main(["--home", str(tmp_path / "none"), "node", "--bootstrap", addr,
                 "--relay", addr]) == 1
    assert_one_line_error(capsys.readouterr().err, "No home folder")


def test_a_home_folder_left_to_another_user_says_how_to_take_it_back(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The usual way in: meshcrew ran once with sudo, so root owns the lock file and replica.
    The refusal said only 'Cannot open the lock file ...: Permission denied.'"""
    with _reachable_folder() as top:
        home = top / "home"
        assert main(["--home", str(home), "init", "--name", "Ada"]) == 0
        lock = Home(home).lock_file
        lock.write_text("")
        if os.geteuid() != 0:
            lock.chmod(0)
        else:  # nobody runs the command, on a home folder it owns but for the lock file
            os.chown(home, 65534, 65534)
            os.chown(Home(home).key_file, 65534, 65534)
        status, stderr = _as_a_user_who_may_not_use(home, ["spaces"], capsys)
    assert status == 1
    assert_one_line_error(stderr, f"Cannot open the lock file {lock}: permission denied",
                          "sudo chown -R ", f" {home}")


@pytest.mark.parametrize("command", [["whoami"], ["spaces"], ["init", "--name", "Bo"],
                                     ["init", "--link", "--wait", "1"], ["doctor"]])
def test_a_home_folder_of_another_user_is_refused_in_one_sentence(
        capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    """A home folder made with sudo (root's, mode 0700): whoami, init and doctor ended in a
    PermissionError traceback, others in 'Cannot open the lock file'."""
    with _reachable_folder() as top:
        home = top / "home"
        assert main(["--home", str(home), "init", "--name", "Ada"]) == 0
        if os.geteuid() != 0:
            home.chmod(0)
        status, stderr = _as_a_user_who_may_not_use(home, command, capsys)
        home.chmod(0o700)
    assert status == 1
    if command == ["doctor"]:
        assert stderr == ""
    else:
        assert_one_line_error(stderr, f"Cannot use the home folder {home}: permission denied",
                              "sudo chown -R ")


def test_the_app_on_a_home_folder_of_another_user_is_refused_in_one_sentence(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``meshcrew`` alone (the app) read the key file's state first: a PermissionError
    traceback. (Run through ``python -c``: the app needs a terminal, the refusal comes before.)"""
    with _reachable_folder() as top:
        home = top / "home"
        assert main(["--home", str(home), "init", "--name", "Ada"]) == 0
        if os.geteuid() != 0:
            home.chmod(0)
        script = ("import sys; from meshcrew.cli.app import _run_app, _print_error; "
                  "from meshcrew.cli.session import Session; from meshcrew.home import Home; "
                  "from meshcrew.errors import MeshcrewError\n"
                  f"try: _run_app(Session(home=Home.resolve({str(home)!r})))\n"
                  "except MeshcrewError as exc: _print_error(str(exc)); sys.exit(1)")
        status, stderr = _as_a_user_who_may_not_use(home, ["-c", script], capsys,
                                                     module=False)
        home.chmod(0o700)
    assert status == 1
    assert_one_line_error(stderr, f"Cannot use the home folder {home}: permission denied")


@contextmanager
def _reachable_folder() -> Iterator[Path]:
    """A new folder that any user may pass through (not tmp_path: run as root, the command
    runs as nobody, who must reach the home folder); removed after."""
    top = Path(tempfile.mkdtemp(prefix="meshcrew-owner-"))
    try:
        top.chmod(0o711)
        yield top
    finally:
        shutil.rmtree(top)


def _as_a_user_who_may_not_use(home: Path, argv: list[str],
                               capsys: pytest.CaptureFixture[str], *,
                               module: bool = True) -> tuple[int, str]:
    """Run ``meshcrew --home HOME ARGV`` (or, not ``module``, ``python ARGV``): as nobody with
    setpriv if this is root, else here (the caller made the files unusable). Its exit status
    and stderr."""
    command = ["-m", "meshcrew", "--home", str(home), *argv] if module else argv
    if os.geteuid() != 0:
        if module:
            status = main(command[2:])
        else:
            done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                                  timeout=60, check=False)
            return done.returncode, done.stderr
        return status, capsys.readouterr().err
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to run as another user")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    done = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, *command],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    if "meshcrew" not in done.stderr + done.stdout:
        pytest.skip(f"nobody cannot run this Python: {done.stderr[-200:]}")
    return done.returncode, done.stderr


def test_doctor_finds_files_left_to_another_user(ada_home: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """It said 'ok: home' for a home folder whose replica root owned (a run with sudo), while
    every command was refused."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    from meshcrew.store import Replica

    home = Home(ada_home)
    Replica.open(home).close()
    os.chown(home.replica_file, 65534, 65534)
    assert main(["--home", str(ada_home), "doctor", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["home"]["ok"] is False
    assert f"{home.replica_file} belong to another user" in checks["home"]["detail"]
    assert f"sudo chown -R root {ada_home}" in checks["home"]["detail"]
    assert home.replica_file.stat().st_uid == 65534, "doctor changes nothing"
