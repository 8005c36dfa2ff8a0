"""When each peer was last synced: real nodes on loopback, their peer reports, the control
socket, the CLI (``status``, ``peers``) and the saved peer book."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.cli import main
from meshcrew.node import Node, PeerReport
from meshcrew.node.peerbook import PeerBook
from node_world import open_nodes, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000


def report_of(node: Node, peer: Node) -> PeerReport:
    return next(r for r in node.peers() if r.peer_id == peer.host.peer_id)


def synced_both_ways(node: Node, peer: Node) -> bool:
    report = report_of(node, peer)
    return report.last_sync_ms is not None and bool(report.spaces) and \
        all(s.last_sync_ms is not None for s in report.spaces)


def cli_json(capsys: pytest.CaptureFixture[str], node: Node, *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["--home", str(node.home.path), *argv, "--json"]) == 0
    found: dict[str, object] = json.loads(capsys.readouterr().out)
    return found


async def test_two_members_report_when_they_last_synced_a_stranger_never(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = wall_ms()
    with trio.fail_after(40):
        async with open_nodes(tmp_path, "Ada", "Bo", "Stranger") as [ada, bo, stranger]:
            space = ada.member.create_space("Crew")
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            await bo.join(code)
            await stranger.connect(ada.addrs()[0])
            await wait_until(lambda: synced_both_ways(ada, bo) and synced_both_ways(bo, ada),
                             within=20)
            # No session with the stranger, either way: it shares no space (issue 17).
            assert stranger.host.peer_id not in ada.sync.last_stats
            assert ada.host.peer_id not in stranger.sync.last_stats
            now = wall_ms()

            for node, peer in ((ada, bo), (bo, ada)):
                report = report_of(node, peer)
                assert report.last_sync_ms is not None
                assert start <= report.last_sync_ms <= now
                [shared] = report.spaces
                assert shared.space == space
                assert shared.last_sync_ms is not None
                assert start <= shared.last_sync_ms <= report.last_sync_ms
                status = node.status()
                assert status.last_sync_ms == report.last_sync_ms
                assert status.synced_peers == 1
            stranger_report = report_of(ada, stranger)
            assert stranger_report.connected
            assert stranger_report.last_sync_ms is None
            assert stranger.status().last_sync_ms is None
            assert stranger.status().synced_peers == 0
            assert report_of(stranger, ada).last_sync_ms is None

            # The same through the control socket, as the CLI shows it.
            def from_the_cli() -> tuple[dict[str, object], dict[str, object]]:
                return cli_json(capsys, ada, "status"), cli_json(capsys, ada, "peers")

            status_json, peers_json = await trio.to_thread.run_sync(from_the_cli)
            last = status_json["last_sync_ms"]
            assert isinstance(last, int)
            assert start <= last <= wall_ms()
            assert status_json["synced_peers"] == 1
            rows = {str(r["peer_id"]): r for r in peers_json["peers"]}  # type: ignore[attr-defined]
            bo_row = rows[bo.host.peer_id]
            assert isinstance(bo_row["last_sync_ms"], int)
            assert start <= bo_row["last_sync_ms"] <= wall_ms()
            assert bo_row["spaces"][0]["last_sync_ms"] is not None
            assert rows[stranger.host.peer_id]["last_sync_ms"] is None
            expected = report_of(ada, bo).last_sync_ms
            bo_id, stranger_id = bo.host.peer_id, stranger.host.peer_id

    # Kept with the peer book: the saved book (and `peers` without a node) still knows.
    book = PeerBook.load(ada.home)
    entry = book.get(bo_id)
    assert entry is not None
    assert entry.last_sync_ms is not None
    assert expected is not None
    assert entry.last_sync_ms >= expected
    assert entry.spaces_synced[space] <= entry.last_sync_ms
    assert book.get(stranger_id).last_sync_ms is None  # type: ignore[union-attr]
    offline = cli_json(capsys, ada, "peers")
    assert offline["running"] is False
    rows = {str(r["peer_id"]): r for r in offline["peers"]}  # type: ignore[attr-defined]
    assert rows[bo_id]["last_sync_ms"] == entry.last_sync_ms
    capsys.readouterr()
    assert main(["--home", str(ada.home.path), "peers"]) == 0
    text = capsys.readouterr().out
    assert "last sync never" in text  # the stranger
    assert text.count("last sync ") == 2
