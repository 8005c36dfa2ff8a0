"""Where a node's log goes (``meshcrew.node.log_file``): ``node.log`` in the home folder, for the
node inside the app as for ``meshcrew node``, and a log that cannot be written is one sentence."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from textual.pilot import Pilot

from meshcrew import identity
from meshcrew.errors import HomeError
from meshcrew.home import Home
from meshcrew.identity import Identity, save
from meshcrew.node.config import NodeConfig
from meshcrew.node.log_file import logging_to_home
from meshcrew.tui.app import MeshcrewApp, run_app
from meshcrew.tui.launch import HomeSetup
from node_processes import LOOPBACK
from test_tui_support import drive, until


def test_the_apps_node_logs_to_node_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The node in the app logged nowhere: a member whose app could not reach the crew had no
    log to look at. (The app's screen is not what this checks: it logs as the node's code does
    while it would run.)"""
    home = Home(tmp_path / "ada")
    home.ensure()
    save(Identity.generate("Ada"), home.key_file)

    def while_the_app_runs(app: MeshcrewApp) -> None:
        logging.getLogger("meshcrew.node").info("node running at %s", "/ip4/127.0.0.1/tcp/1")
        logging.getLogger("libp2p.network.swarm").warning("swarm trouble")

    monkeypatch.setattr(MeshcrewApp, "run", while_the_app_runs)
    run_app(home, network=False)
    logged = home.log_file.read_text()
    assert "INFO meshcrew.node: node running at /ip4/127.0.0.1/tcp/1" in logged
    assert "WARNING libp2p.network.swarm: swarm trouble" in logged
    assert capsys.readouterr().err == ""


def test_a_log_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    home = Home(tmp_path / "ada")
    home.ensure()
    home.log_file.mkdir()  # as unwritable as it gets, even for root
    refused = pytest.raises(HomeError, match=r"Cannot write the node's log .*: Is a directory")
    with refused, logging_to_home(home):
        pass


def test_the_first_run_node_logs_to_node_log_once_the_home_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The first-run screen (no identity yet) made the identity and ran its node with the log
    going nowhere; it logs to node.log from when the name is given, and stops when the app ends."""
    home = Home(tmp_path / "ada")  # not made yet: the first-run screen makes it

    def first_run(app: MeshcrewApp) -> None:
        assert app.setup is not None
        app.setup.create("Ada")  # what the first-run screen does with the name typed
        logging.getLogger("meshcrew.node").info("node running at %s", "/ip4/127.0.0.1/tcp/1")
        logging.getLogger("libp2p.network.swarm").warning("swarm trouble")

    monkeypatch.setattr(MeshcrewApp, "run", first_run)
    run_app(home, network=False)
    logging.getLogger("meshcrew.node").warning("after the app ended")
    logged = home.log_file.read_text()
    assert "INFO meshcrew.node: node running at /ip4/127.0.0.1/tcp/1" in logged
    assert "WARNING libp2p.network.swarm: swarm trouble" in logged
    assert "after the app ended" not in logged
    assert home.log_file.stat().st_mode & 0o777 == 0o600
    assert "swarm trouble" not in capsys.readouterr().err


NODE_START_S = 30.0


def test_the_first_run_screens_own_node_writes_node_log(tmp_path: Path) -> None:
    """The same with the first-run screen's real node (loopback, no mDNS): the name typed, the
    node starts inside the app and says where it runs, in node.log."""
    home = Home(tmp_path / "ada")
    setup = HomeSetup(home, config=NodeConfig(listen_addrs=(LOOPBACK,), mdns=False),
                      log_to_home=True)
    app = MeshcrewApp(setup=setup)

    def logged() -> str:
        return home.log_file.read_text() if home.log_file.exists() else ""

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("A", "d", "a", "enter")
        await until(pilot, lambda: app.backend is not None, "the identity")
        deadline = asyncio.get_running_loop().time() + NODE_START_S  # a node's patience
        while " running at /ip4/127.0.0.1/" not in logged():
            assert asyncio.get_running_loop().time() < deadline, "no node start in node.log"
            await pilot.pause(0.05)

    try:
        drive(app, script)
    finally:
        setup.close()
    peer_id = identity.load(home.key_file).peer_id
    assert f"INFO meshcrew.node: node {peer_id} running at" in logged()
