"""A node of the release before sync version 2 still syncs with a new one, both ways round.

The old release is the project's own history (commit ``f60af16``, the last before
``/meshcrew/sync/2.0.0``), unpacked with ``git archive`` and run as a real ``meshcrew node``
process from the same environment. The new node opens version 2, is refused, and falls back to
version 1; the old node opens version 1, which the new one serves. Skipped where the history
is not available (an export without ``.git``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.records import record_id
from meshcrew.service import Member
from meshcrew.store import Replica
from node_processes import Fleet, NodeProcess, fleet, wait_for
from node_world import mint_checkins, wall_ms

__all__ = ["fleet"]  # the fixture
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
OLD_RELEASE = "f60af16"
"""The last commit whose nodes speak only /meshcrew/sync/1.0.0."""


@pytest.fixture(scope="module")
def old_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The old release's ``src`` folder."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the project's git history is not available")
    tree = tmp_path_factory.mktemp("old-release")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_RELEASE, "src"],
                             capture_output=True, timeout=60, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD_RELEASE} is not in this clone's history")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, timeout=60, check=True)
    assert 'PROTOCOL_ID = "/meshcrew/sync/1.0.0"' in (
        tree / "src/meshcrew/sync/__init__.py").read_text()
    return tree / "src"


def two_member_crew(founder: Home, member: Home) -> bytes:
    """A crew of two made in-process (invite, join, key rotation); no node runs."""
    f_replica, m_replica = Replica.open(founder), Replica.open(member)
    try:
        f_member = Member(f_replica, identity.load(founder.key_file), clock=wall_ms)
        m_member = Member(m_replica, identity.load(member.key_file), clock=wall_ms)
        space = f_member.create_space("Across releases")
        code = f_member.invite(space, expires_ms=wall_ms() + 3_600_000)
        m_member.ingest(f_member.export(space), sender="file:founder")
        m_member.join(code)
        f_member.ingest(m_member.export(space), sender="file:member")  # rotates the keys
        m_member.ingest(f_member.export(space), sender="file:founder")
    finally:
        f_replica.close()
        m_replica.close()
    return space


def as_the_old_release_left_it(home: Home) -> None:
    """The replica at the schema version the old release knows (2): a member who has not
    upgraded has such a file (the old release refuses newer ones). Version 3 only added the
    chains' count of expired posts, which a new node counts again when it upgrades the file."""
    conn = sqlite3.connect(home.replica_file)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        conn.execute("ALTER TABLE chains DROP COLUMN expired")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    finally:
        conn.close()


def ids_of(node: NodeProcess, space: bytes) -> set[bytes]:
    """The ids of the space's records on a running node (its own export: an old release's
    replica is a version a new meshcrew does not open read-only)."""
    return {record_id(raw) for raw in node.call("export", space)}


@pytest.mark.parametrize("old", ["member", "founder"])
def test_an_old_and_a_new_node_sync_both_ways(fleet: Fleet, old_source: Path, old: str) -> None:
    old_run = ["env", f"PYTHONPATH={old_source}"]
    founder, member = (NodeProcess(fleet.root, name, wrap=old_run if old == role else ())
                       for name, role in (("Founder", "founder"), ("Member", "member")))
    fleet.nodes += [founder, member]
    space = two_member_crew(founder.home, member.home)
    mint_checkins(founder.home, identity.load(founder.home.key_file), space, 600)
    as_the_old_release_left_it((founder if old == "founder" else member).home)
    founder.start()
    member.start()
    held = ids_of(founder, space)
    member.call("connect", founder.status().addrs[0])
    wait_for(lambda: ids_of(member, space) >= held, within=60, what="the catch-up")
    posted = member.call("checkin", space, text="across releases", energy=3)
    wait_for(lambda: posted in ids_of(founder, space), within=60,
             what="the member's check-in on the founder")
    for node in (founder, member):
        assert not node.status().banned  # nobody was penalized for the other's version
