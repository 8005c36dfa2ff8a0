"""The node a CLI command starts for itself (``join`` or ``devices add`` with no ``meshcrew node``
running) hands a refusal back as the error itself, so the CLI prints one sentence, and logs to
``node.log`` as ``meshcrew node`` does, not to stderr."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from meshcrew.cli.temporary_node import join_with_temporary_node
from meshcrew.errors import SpaceError
from meshcrew.home import Home
from meshcrew.identity import Identity, load, save
from meshcrew.net.seam import quiet_stream_failures
from meshcrew.node.log_file import logging_to_home
from meshcrew.service import Member
from meshcrew.spaces import decode_invite_code, encode_invite_code
from meshcrew.store import Replica
from node_processes import Fleet, fleet

__all__ = ["fleet"]  # the fixture

HOUR_MS = 3_600_000


def joining_own_crew(home: Home) -> tuple[Identity, SpaceError]:
    """Ada joins, through the command's own node, the crew she made: she and the refusal."""
    home.ensure()
    ada = Identity.generate("Ada")
    save(ada, home.key_file)
    with Replica.open(home) as replica:
        member = Member(replica, ada, clock=lambda: int(time.time() * 1000))
        space = member.create_space("Crew")
        code = member.invite(space, expires_ms=int(time.time() * 1000) + HOUR_MS)
        with pytest.raises(SpaceError, match="already a member") as refused:
            join_with_temporary_node(replica, ada, code, None)
    return ada, refused.value


def test_a_join_refused_inside_the_node_is_one_meshcrew_error(tmp_path: Path) -> None:
    """trio and libp2p nest an error raised inside the node in their task groups (the CLI
    printed that nest as a traceback for a used-up invite, or one with no member online)."""
    _, refused = joining_own_crew(Home(tmp_path / "ada"))
    assert not isinstance(refused, BaseExceptionGroup)


def test_the_commands_node_logs_to_node_log_not_stderr(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """As ``meshcrew node`` does: py-libp2p's warnings on stderr stood between a join's progress
    and its one-line error ("fail to upgrade mux for peer ...")."""
    home = Home(tmp_path / "ada")
    ada, _ = joining_own_crew(home)
    assert f"node {ada.peer_id} running at" in home.log_file.read_text()
    assert capsys.readouterr().err == ""


def test_libp2p_warnings_go_to_node_log_too(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """py-libp2p's logger does not propagate to the root logger, so its warnings went to stderr
    (Python's last-resort handler) in ``meshcrew node`` and in every command's node."""
    import libp2p  # noqa: F401  (sets up its logger as the node's imports do)

    home = Home(tmp_path / "ada")
    home.ensure()
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.ERROR)
    try:
        with logging_to_home(home):
            logging.getLogger("libp2p.network.swarm").error("swarm trouble with %s", "P")
            logging.getLogger("libp2p.network.auto_connector").info("initiating 200 new dials")
        assert root.level == logging.ERROR  # put back, for whatever runs on here
    finally:
        root.setLevel(root_level)
    logged = home.log_file.read_text()
    assert "ERROR libp2p.network.swarm: swarm trouble with P" in logged
    assert "new dials" not in logged  # its warnings, not its chatter
    assert capsys.readouterr().err == ""


def test_libp2ps_expected_dial_failures_are_debug_lines() -> None:
    """A failed redial of an offline peer, and the AutoNAT dial-back's aftermath, were ERROR
    lines: hundreds an hour in node.log (and before f444f9e on the terminal of meshcrew node)."""
    quiet_stream_failures()
    for name, message in (("libp2p.transport.tcp.tcp", "Failed to open TCP stream: all "
                           "attempts to connect to 127.0.0.1:4001 failed"),
                          ("libp2p.network.swarm", "fail to upgrade mux for peer P")):
        record = logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)
        logging.getLogger(name).filter(record)
        assert record.levelno == logging.DEBUG, name
    other = logging.LogRecord("libp2p.network.swarm", logging.ERROR, __file__, 1,
                              "something else", None, None)
    logging.getLogger("libp2p.network.swarm").filter(other)
    assert other.levelno == logging.ERROR


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_records_of_the_space_from_before_the_invite_do_not_stop_a_join(fleet: Fleet,
                                                                      tmp_path: Path) -> None:
    """Cy holds an old export of the crew (so would a member who left and is invited back):
    'join CODE' found the space here, joined locally, and was refused ('This invite is not
    among the records this replica holds'), while the inviter's node was running at the
    code's address. It now joins over the network, through the command's own node."""
    ada, cy = fleet.make("Ada", "Cy")
    ada.start()
    try:
        space = str(ada.cli("crew", "create", "Moon")["id"])
        ada.run("export", space, "-o", str(tmp_path / "old.mcr"))
        cy.run("import", str(tmp_path / "old.mcr"))
        code = str(ada.cli("invite", space)["code"])
        done = cy.run("join", code, check=False)  # Cy's node is not running
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Joined Moon ("), done.stdout
    finally:
        ada.stop()
    [moon] = cy.cli("spaces")["spaces"]
    assert (moon["name"], moon["my_status"]) == ("Moon", "active")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_join_signed_here_that_no_member_took_in_goes_again(fleet: Fleet) -> None:
    """Cy signed his join while no member's node took it in (the inviter's node stopped
    answering mid-join, or he joined from a file and never gave his reply back): it stands in
    his replica only, and members turn a stranger's sync away. 'join CODE' again, his node not
    running, said 'You are already a member of this space.'; it now sends that join to Ada's
    node, which takes it in and rotates the keys."""
    ada, cy = fleet.make("Ada", "Cy")
    now_ms = int(time.time() * 1000)
    with Replica.open(ada.home) as ada_replica, Replica.open(cy.home) as cy_replica:
        founder = Member(ada_replica, load(ada.home.key_file), clock=lambda: now_ms)
        space = founder.create_space("Moon")
        code = founder.invite(space, expires_ms=now_ms + HOUR_MS)
        joiner = Member(cy_replica, load(cy.home.key_file), clock=lambda: now_ms + 1)
        joiner.ingest(founder.export(space), sender="file")
        joiner.join(code)  # Ada never gets it
    ada.start()
    try:
        with_addrs = encode_invite_code(replace(decode_invite_code(code),
                                                addrs=ada.status().addrs))
        done = cy.run("join", with_addrs, check=False)  # Cy's node is not running
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Joined Moon ("), done.stdout
        assert len(ada.cli("members", space.hex())["members"]) == 2  # Ada took Cy's join in
    finally:
        ada.stop()
    [moon] = cy.cli("spaces")["spaces"]
    assert (moon["my_status"], moon["waiting_for_keys"]) == ("active", False)
