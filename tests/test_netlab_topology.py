"""The NAT lab behaves like an internet with two home routers, and leaves nothing behind.

TCP "who am I" servers answer with the address and port they see; a client run in another
namespace prints that answer, or the kind of error it met. Runs as root only (skipped with the
lab's reason otherwise); every wait polls with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshcrew.netlab import HOSTS, Lab, LabError, missing, open_lab, topology
from namespaces import skip_unless_namespaces

pytestmark = pytest.mark.timeout(60)

PORT = 7000
CONNECT_TIMEOUT_S = 1.0

WHOAMI = """\
import pathlib, socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
pathlib.Path(sys.argv[2]).touch()
while True:
    conn, (host, port) = server.accept()
    conn.sendall(f"{host} {port}\\n".encode())
    conn.close()
"""
"""Tell each client the address and port its connection came from."""

CLIENT = """\
import socket, sys
dest, port, bind, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if bind:
    sock.bind(("0.0.0.0", bind))
sock.settimeout(timeout)
try:
    sock.connect((dest, port))
    print(sock.makefile().readline().strip())
except OSError as error:
    print("error", type(error).__name__)
"""
"""Print what the server answered, or ``error KIND`` (``TimeoutError``, ``OSError``...)."""

SLEEPER = """\
import pathlib, signal, subprocess, sys, time
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
pathlib.Path(sys.argv[1]).write_text(str(child.pid))
time.sleep(300)
"""
"""Start a grandchild, write its pid to a file (the sign it is ready), and sleep."""


def wait_for(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {within:.0f} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = missing()
    if reason is not None:
        skip_unless_namespaces(reason)
    with open_lab() as made:
        yield made


def serve(lab: Lab, host: str, tmp_path: Path, port: int = PORT) -> None:
    """Start a who-am-I server in the host's namespace and wait until it listens."""
    ready = tmp_path / f"{host}-{port}.ready"
    lab.popen(host, [sys.executable, "-c", WHOAMI, str(port), str(ready)])
    wait_for(ready.exists, f"the server in {host} to listen")


def connect(lab: Lab, host: str, dest: str, *, port: int = PORT, bind: int = 0) -> str:
    """What the server at ``dest`` saw of a connection from ``host`` (or ``error KIND``)."""
    done = lab.run(host, [sys.executable, "-c", CLIENT, dest, str(port), str(bind),
                          str(CONNECT_TIMEOUT_S)], timeout=15)
    return done.stdout.strip()


def seen_port(answer: str) -> int:
    host, _, port = answer.partition(" ")
    assert host != "error", answer
    return int(port)


def test_a_laptop_reaches_the_internet_through_its_routers_address(lab: Lab,
                                                                   tmp_path: Path) -> None:
    serve(lab, "relay", tmp_path)
    assert lab.addr("ana") == "192.0.2.10"
    assert lab.public_ip("ana") == lab.public_ip("r1") == lab.addr("r1") == "198.51.100.11"
    assert lab.public_ip("relay") == lab.addr("relay") == "198.51.100.2"

    assert connect(lab, "ana", "198.51.100.2").split()[0] == "198.51.100.11"
    assert connect(lab, "bo", "198.51.100.2").split()[0] == "198.51.100.12"
    assert connect(lab, "relay2", "198.51.100.2").split()[0] == "198.51.100.3"
    # The router's own connections get their answers too.
    assert connect(lab, "r1", "198.51.100.2").split()[0] == "198.51.100.11"


def test_the_internet_cannot_open_a_connection_to_a_laptop(lab: Lab, tmp_path: Path) -> None:
    serve(lab, "ana", tmp_path)
    serve(lab, "r1", tmp_path)
    # The server in ana is up: its router, on the LAN side, reaches it.
    assert connect(lab, "r1", "192.0.2.10").split()[0] == "192.0.2.1"

    # The internet has no route to a home's private addresses...
    assert connect(lab, "relay", "192.0.2.10").startswith("error")
    # ...and with one, the router's forward filter drops the SYN.
    lab.run("relay", ["ip", "route", "add", "192.0.2.0/24", "via", lab.addr("r1")], timeout=10)
    assert connect(lab, "relay", "192.0.2.10") == "error TimeoutError"
    # Nor is any port of the router's public address open: not one with a listener behind it,
    # and a closed one is dropped silently (no RST to tell a scanner it is there).
    assert connect(lab, "relay", lab.public_ip("r1")) == "error TimeoutError"
    assert connect(lab, "relay", lab.public_ip("r1"), port=PORT + 1) == "error TimeoutError"
    # Nor another home.
    assert connect(lab, "bo", lab.public_ip("r1")) == "error TimeoutError"


def test_a_cone_nat_keeps_the_source_port_whatever_the_destination(lab: Lab,
                                                                    tmp_path: Path) -> None:
    serve(lab, "relay", tmp_path)
    serve(lab, "relay2", tmp_path)
    assert lab.nat_mode("r1") == "cone"
    for bound in (40001, 40002):
        assert connect(lab, "ana", "198.51.100.2", bind=bound) == f"198.51.100.11 {bound}"
        assert connect(lab, "ana", "198.51.100.3", bind=bound) == f"198.51.100.11 {bound}"


def test_a_symmetric_nat_gives_each_destination_its_own_random_port(lab: Lab,
                                                                    tmp_path: Path) -> None:
    serve(lab, "relay", tmp_path)
    serve(lab, "relay2", tmp_path)
    lab.set_nat("r1", "symmetric")
    assert lab.nat_mode("r1") == "symmetric"
    tries = [(bound, dest) for bound in (40001, 40002) for dest in ("198.51.100.2",
                                                                    "198.51.100.3")]
    mapped = {(bound, dest): seen_port(connect(lab, "ana", dest, bind=bound))
              for bound, dest in tries}
    # A random port out of ~64000 equals the bound one, or another random one, by chance about
    # once in 64000: that all four do is out of the question.
    assert any(port != bound for (bound, _), port in mapped.items()), mapped
    assert len(set(mapped.values())) > 1, mapped

    lab.set_nat("r1", "cone")
    assert connect(lab, "ana", "198.51.100.2", bind=40003) == "198.51.100.11 40003"


def test_names_and_modes_are_checked(lab: Lab) -> None:
    with pytest.raises(LabError, match="not a host"):
        lab.addr("carol")
    with pytest.raises(LabError, match="not a router"):
        lab.set_nat("ana", "cone")
    with pytest.raises(LabError, match="unknown NAT mode"):
        lab.set_nat("r1", "full-cone")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="no address"):
        lab.addr("inet")
    names = [lab.netns(host) for host in HOSTS] + [lab.interface(h) for h in HOSTS[1:]]
    assert len(set(names)) == len(names)
    assert all(name.startswith(lab.tag) for name in names)
    assert all(len(lab.interface(host)) <= 15 for host in HOSTS[1:])


# --- taking down -----------------------------------------------------------------------------


def lab_namespaces(tag: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True,
                            timeout=10).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(tag)]


def root_interfaces(tag: str) -> list[str]:
    listed = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True,
                            timeout=10).stdout
    return [line for line in listed.splitlines() if tag in line]


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def start_sleeper(lab: Lab, host: str, tmp_path: Path, *, tracked: bool,
                  ignore_term: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    """A sleeping process (and its sleeping child) in the host's namespace, once both run."""
    pid_file = tmp_path / f"{host}.child"
    argv = [sys.executable, "-c", SLEEPER, str(pid_file), "ignore-term" if ignore_term else "-"]
    process: subprocess.Popen[bytes] = (lab.popen(host, argv) if tracked
                                        else subprocess.Popen([*lab.wrap(host), *argv]))
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", f"a sleeper in {host}")
    return process, int(pid_file.read_text())


def test_the_lab_leaves_no_namespace_interface_or_process_behind(tmp_path: Path) -> None:
    if (reason := missing()) is not None:
        skip_unless_namespaces(reason)
    untracked: subprocess.Popen[bytes] | None = None
    try:
        with open_lab(stop_timeout=1.0) as lab:
            tag = lab.tag
            assert sorted(lab_namespaces(tag)) == sorted(lab.netns(host) for host in HOSTS)
            assert root_interfaces(tag) == []
            # One started through the lab, deaf to SIGTERM; one started elsewhere with only
            # the lab's prefix (as NodeProcess does): each with a child of its own.
            tracked, tracked_child = start_sleeper(lab, "relay", tmp_path, tracked=True,
                                                   ignore_term=True)
            untracked, untracked_child = start_sleeper(lab, "ana", tmp_path, tracked=False)
            started = time.monotonic()
        took = time.monotonic() - started
        assert lab_namespaces(tag) == []
        assert root_interfaces(tag) == []
        assert tracked.returncode == -signal.SIGKILL
        assert untracked.wait(timeout=5) == -signal.SIGTERM
        assert is_gone(tracked_child)
        assert is_gone(untracked_child)
        assert took < 5.0
        with pytest.raises(LabError, match="closed"):
            lab.popen("relay", ["true"])
    finally:
        if untracked is not None and untracked.poll() is None:
            untracked.kill()
            untracked.wait(timeout=5)


def test_the_lab_is_taken_down_on_ctrl_c_and_on_a_failed_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if (reason := missing()) is not None:
        skip_unless_namespaces(reason)
    with pytest.raises(KeyboardInterrupt), open_lab() as lab:  # noqa: PT012
        tag = lab.tag
        raise KeyboardInterrupt
    assert lab_namespaces(tag) == []

    made: list[str] = []

    def fail(self: Lab, router: str, mode: str) -> None:
        made.append(self.tag)
        raise LabError("nft refused (as this test asks)")

    monkeypatch.setattr(topology.Lab, "set_nat", fail)
    with pytest.raises(LabError, match="as this test asks"), open_lab():
        pass
    assert len(made) == 1
    assert lab_namespaces(made[0]) == []
    assert root_interfaces(made[0]) == []


SCRIPT = """\
import sys, time
from meshcrew.netlab import open_lab
with open_lab() as lab:
    print(lab.tag, flush=True)
    time.sleep(300)
"""


def test_a_script_killed_with_sigterm_takes_its_lab_down() -> None:
    if (reason := missing()) is not None:
        skip_unless_namespaces(reason)
    script = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert script.stdout is not None
        tag = script.stdout.readline().strip()  # bounded by the test's timeout
        assert tag.startswith("mc")
        assert len(lab_namespaces(tag)) == len(HOSTS)
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=15) == 128 + signal.SIGTERM
        assert lab_namespaces(tag) == []
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(timeout=5)
        if script.stdout is not None:
            script.stdout.close()


def test_missing_says_the_lab_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = topology._missing.__wrapped__()
    if sys.platform.startswith("linux"):
        assert reason == "the NAT lab needs root (it creates network namespaces)"
