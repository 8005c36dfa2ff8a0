"""A small internet with two home NATs, built from Linux network namespaces (needs root).

The shape follows libp2p's hole-punching interop lab::

                 relay 198.51.100.2     relay2 198.51.100.3
                            \\               /
                 inet: a bridge, 198.51.100.0/24 (no routes anywhere else)
                            /               \\
      r1 WAN 198.51.100.11                   r2 WAN 198.51.100.12
      r1 LAN 192.0.2.1/24                    r2 LAN 203.0.113.1/24
                 |                                |
      ana 192.0.2.10 (default via r1)        bo 203.0.113.10 (default via r2)

Every host is its own namespace; each link is a veth pair made directly inside the two
namespaces it joins, so nothing of the lab ever appears in the host's own namespace, and every
``ip``/``nft`` command the lab runs runs inside a namespace it made. Names carry a tag unique to
the run (``mc`` and six hex digits): namespaces are ``TAG-HOST``, interfaces ``TAG`` plus a short
code for the host (Linux allows 15 characters).

Each router forwards, masquerades what leaves its WAN interface, and filters like a home router:
it forwards LAN to WAN and the replies, nothing else, and silently drops (no RST, no ICMP) any
new connection to itself from the WAN side. Two NAT modes:

- ``"cone"``: ``masquerade`` keeps the source port when it can, so a mapping does not depend on
  the destination (what hole punching needs); filtering is still endpoint-dependent (conntrack).
- ``"symmetric"``: ``masquerade random`` picks a random source port for every connection, so
  the port a peer sees is useless to anyone else and hole punching fails.

IPv6 is switched off in every namespace, so no traffic goes around the IPv4 rules.

:func:`open_lab` builds the lab and takes it all down on exit, whatever ends the block: every
process still running in one of its namespaces (started through the lab or not) gets SIGTERM,
then SIGKILL after a deadline, each by its pid; then every namespace is deleted, which deletes
its interfaces. While the lab is open, SIGTERM and SIGHUP unwind the block like Ctrl-C does, and
an :mod:`atexit` hook closes a lab a script forgot.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from meshcrew.errors import LocalError
from meshcrew.netlab.processes import (
    pids_inside,
    signal_if_inside,
    signals_deferred,
    termination_unwinds,
)

NatMode = Literal["cone", "symmetric"]
"""How a router maps its LAN's connections to source ports on its WAN address."""

NAT_MODES: tuple[NatMode, ...] = get_args(NatMode)

STOP_TIMEOUT_S = 5.0
"""How long processes get to exit after SIGTERM before they get SIGKILL."""

_COMMAND_TIMEOUT_S = 30.0
_POLL_S = 0.02
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class LabError(LocalError):
    """The NAT lab cannot be built, used or taken down (a command failed, a name is unknown)."""


@dataclass(frozen=True)
class _Host:
    """One namespace of the plan, and the link from it to the namespace above it."""

    name: str
    code: str
    """Short name used in interface names."""
    upstream: str | None = None
    """The namespace at the other end of this host's link (None for ``inet``)."""
    address: str | None = None
    """This host's end of the link, with prefix length."""
    port_address: str | None = None
    """The upstream end of the link, with prefix length (a router's LAN address)."""
    gateway: str | None = None


_PLAN = (
    _Host("inet", "in"),
    _Host("relay", "rl", "inet", "198.51.100.2/24"),
    _Host("relay2", "rl2", "inet", "198.51.100.3/24"),
    _Host("r1", "r1", "inet", "198.51.100.11/24"),
    _Host("r2", "r2", "inet", "198.51.100.12/24"),
    _Host("ana", "ana", "r1", "192.0.2.10/24", "192.0.2.1/24", "192.0.2.1"),
    _Host("bo", "bo", "r2", "203.0.113.10/24", "203.0.113.1/24", "203.0.113.1"),
)
_BY_NAME = {host.name: host for host in _PLAN}

HOSTS: tuple[str, ...] = tuple(host.name for host in _PLAN)
"""Every namespace of the lab: ``inet`` (the bridge), then the hosts."""
ROUTERS: tuple[str, ...] = ("r1", "r2")
LAPTOPS: tuple[str, ...] = ("ana", "bo")
PUBLIC_HOSTS: tuple[str, ...] = ("relay", "relay2")


def _tool(name: str) -> str | None:
    """The absolute path of a system tool, looking in the sbin folders too."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def _sbin(name: str) -> str:
    """A system tool's absolute path if it can be found, else its name."""
    return _tool(name) or name


def missing() -> str | None:
    """Say why the NAT lab cannot run on this machine, or None if it can.

    The answer is a sentence fit for ``pytest.skip``. The first call probes the kernel by making
    (and deleting) a namespace with a NAT table in it; the answer is then remembered.
    """
    return _missing()


@functools.cache
def _missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the NAT lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the NAT lab needs root (it creates network namespaces)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("sysctl", "procps")):
        if _tool(tool) is None:
            return f"the NAT lab needs `{tool}`: install Debian's {package} (scripts/install test)"
    probe = f"{_new_tag()}-probe"
    try:
        _command(["ip", "netns", "add", probe])
    except LabError as error:
        return f"network namespaces are not permitted here: {error}"
    try:
        _command(["ip", "netns", "exec", probe, _sbin("nft"), "-f", "-"],
                 input=_ruleset("symmetric", wan="lo", lan="lo"))
    except LabError as error:
        return f"nftables NAT does not work in a network namespace here: {error}"
    finally:
        with contextlib.suppress(LabError):
            _command(["ip", "netns", "del", probe])
    return None


def _new_tag() -> str:
    return "mc" + secrets.token_hex(3)


def _command(argv: Sequence[str], *, input: str | None = None) -> str:
    """Run a setup command to completion and return its output; LabError if it fails."""
    try:
        done = subprocess.run([_sbin(argv[0]), *argv[1:]], input=input, capture_output=True,
                              text=True, timeout=_COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"`{' '.join(argv)}` could not run: {error}") from error
    if done.returncode != 0:
        detail = done.stderr.strip() or f"exit status {done.returncode}"
        raise LabError(f"`{' '.join(argv)}` failed: {detail}")
    return done.stdout


def _ruleset(mode: NatMode, *, wan: str, lan: str) -> str:
    """The whole nftables ruleset of a router whose interfaces are ``wan`` and ``lan``."""
    masquerade = "masquerade random" if mode == "symmetric" else "masquerade"
    return f"""\
flush ruleset
table inet meshcrew_router {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{lan}" oifname "{wan}" accept
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{wan}" ct state established,related accept
        iifname "{wan}" drop
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{wan}" {masquerade}
    }}
}}
"""


class Lab:
    """A built NAT lab: its namespaces, addresses, routers and the processes run in it.

    Made by :func:`open_lab`, which also takes it down. Hosts are named as in :data:`HOSTS`.

    Attributes:
        tag: The run's unique prefix of every namespace and interface name.
    """

    def __init__(self, tag: str, stop_timeout: float) -> None:
        self.tag = tag
        self._stop_timeout = stop_timeout
        self._made: list[str] = []
        """Names of the namespaces made so far, in order."""
        self._identities: set[tuple[int, int]] = set()
        """(st_dev, st_ino) of the namespaces made, to find the processes inside them."""
        self._processes: list[subprocess.Popen[Any]] = []
        self._nat: dict[str, NatMode] = {}
        self._closed = False

    # --- names and addresses ------------------------------------------------------------------

    def netns(self, host: str) -> str:
        """The name of the host's network namespace (for ``ip -n NAME`` and the like)."""
        return f"{self.tag}-{self._host(host).name}"

    def interface(self, host: str) -> str:
        """The name of the host's interface towards the internet (a router's WAN interface).

        Raises:
            LabError: ``host`` is ``inet``, which has only the bridge.
        """
        found = self._host(host)
        if found.upstream is None:
            raise LabError("inet has no uplink; its bridge is named " + self._bridge)
        return self.tag + found.code

    def addr(self, host: str) -> str:
        """The host's own IPv4 address (a router's WAN address), without the prefix length.

        Raises:
            LabError: ``host`` is ``inet``, which has no address.
        """
        found = self._host(host)
        if found.address is None:
            raise LabError(f"{host} has no address in the NAT lab")
        return found.address.partition("/")[0]

    def public_ip(self, host: str) -> str:
        """The address the internet sees the host's traffic come from.

        A router's WAN address, a laptop's router's WAN address, or a public host's own address.
        """
        found = self._host(host)
        if found.name in LAPTOPS:
            assert found.upstream is not None
            return self.addr(found.upstream)
        return self.addr(found.name)

    def wrap(self, host: str) -> list[str]:
        """The command prefix that runs a program in the host's namespace.

        ``ip netns exec`` replaces itself with the program, so the pid of the started process
        is the program's own.
        """
        return [_sbin("ip"), "netns", "exec", self.netns(host)]

    # --- NAT ----------------------------------------------------------------------------------

    def set_nat(self, router: str, mode: NatMode) -> None:
        """Replace the router's whole ruleset with one in the given NAT mode.

        Connections already open keep the port mapping they were given; new ones get the new
        mode.

        Raises:
            LabError: ``router`` is not a router, the mode is unknown, or ``nft`` failed.
        """
        if router not in ROUTERS:
            raise LabError(f"{router!r} is not a router of the NAT lab (one of {ROUTERS})")
        if mode not in NAT_MODES:
            raise LabError(f"unknown NAT mode {mode!r} (one of {NAT_MODES})")
        laptop = next(host for host in _PLAN if host.upstream == router)
        ruleset = _ruleset(mode, wan=self.interface(router), lan=self.tag + laptop.code + "p")
        _command([*self.wrap(router), _sbin("nft"), "-f", "-"], input=ruleset)
        self._nat[router] = mode

    def nat_mode(self, router: str) -> NatMode:
        """The NAT mode the router was last given."""
        if router not in self._nat:
            raise LabError(f"{router!r} is not a router of the NAT lab (one of {ROUTERS})")
        return self._nat[router]

    # --- processes ----------------------------------------------------------------------------

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a program in the host's namespace; the lab stops it when it closes.

        Args:
            host: One of :data:`HOSTS`.
            argv: The program and its arguments.
            **kwargs: Passed on to :class:`subprocess.Popen`. The caller closes any pipes.

        Raises:
            LabError: The lab is closed, or ``host`` is unknown.
        """
        if self._closed:
            raise LabError("the NAT lab is closed")
        process: subprocess.Popen[Any] = subprocess.Popen([*self.wrap(host), *argv], **kwargs)
        self._processes.append(process)
        return process

    def run(self, host: str, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program in the host's namespace to completion, capturing its output as text.

        Args:
            host: One of :data:`HOSTS`.
            argv: The program and its arguments.
            timeout: Seconds before the program is killed and TimeoutExpired raised.
            check: Raise LabError if the program exits with a non-zero status.
            input: Text for the program's standard input.

        Raises:
            LabError: The program failed (with ``check``), or ``host`` is unknown.
            subprocess.TimeoutExpired: The program ran longer than ``timeout``.
        """
        done = subprocess.run([*self.wrap(host), *argv], input=input, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise LabError(f"`{' '.join(argv)}` in {host} exited {done.returncode}: "
                           f"{done.stderr.strip()}")
        return done

    # --- building and taking down -------------------------------------------------------------

    @property
    def _bridge(self) -> str:
        return self.tag + "br"

    def _host(self, name: str) -> _Host:
        try:
            return _BY_NAME[name]
        except KeyError:
            raise LabError(f"{name!r} is not a host of the NAT lab (one of {HOSTS})") from None

    def _build(self, nat: NatMode) -> None:
        for name in HOSTS:
            self._add_namespace(name)
        _command(["ip", "-n", self.netns("inet"), "link", "add", self._bridge, "type", "bridge"])
        _command(["ip", "-n", self.netns("inet"), "link", "set", self._bridge, "up"])
        for host in _PLAN:
            if host.upstream is not None:
                self._link(host, host.upstream)
        for router in ROUTERS:
            _command([*self.wrap(router), _sbin("sysctl"), "-qw", "net.ipv4.ip_forward=1"])
            self.set_nat(router, nat)

    def _add_namespace(self, host: str) -> None:
        name = self.netns(host)
        _command(["ip", "netns", "add", name])
        self._made.append(name)
        ns = os.stat(f"/run/netns/{name}")
        self._identities.add((ns.st_dev, ns.st_ino))
        _command([*self.wrap(host), _sbin("sysctl"), "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1"])
        _command(["ip", "-n", name, "link", "set", "lo", "up"])

    def _link(self, host: _Host, upstream: str) -> None:
        """Join a host to its upstream namespace with a veth pair made in place."""
        mine, port = self.tag + host.code, self.tag + host.code + "p"
        ns, up_ns = self.netns(host.name), self.netns(upstream)
        _command(["ip", "link", "add", mine, "netns", ns, "type", "veth",
                  "peer", "name", port, "netns", up_ns])
        if upstream == "inet":
            _command(["ip", "-n", up_ns, "link", "set", port, "master", self._bridge])
        if host.port_address is not None:
            _command(["ip", "-n", up_ns, "address", "add", host.port_address, "dev", port])
        _command(["ip", "-n", up_ns, "link", "set", port, "up"])
        assert host.address is not None
        _command(["ip", "-n", ns, "address", "add", host.address, "dev", mine])
        _command(["ip", "-n", ns, "link", "set", mine, "up"])
        if host.gateway is not None:
            _command(["ip", "-n", ns, "route", "add", "default", "via", host.gateway])

    def close(self) -> None:
        """Stop every process in the lab's namespaces, then delete the namespaces.

        Safe to call more than once; Ctrl-C, SIGTERM and SIGHUP wait until it is done.

        Raises:
            LabError: Something could not be taken down (the message says what).
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        with signals_deferred():
            problems = self._stop_processes()
            for name in reversed(self._made):
                try:
                    _command(["ip", "netns", "del", name])
                except LabError as error:
                    problems.append(str(error))
        if problems:
            raise LabError("the NAT lab was not fully taken down: " + "; ".join(problems))

    def _stop_processes(self) -> list[str]:
        """SIGTERM everything inside the namespaces, SIGKILL what is left after the deadline."""
        for sig, within in ((signal.SIGTERM, self._stop_timeout), (signal.SIGKILL, 5.0)):
            for pid in pids_inside(self._identities):
                signal_if_inside(pid, sig, self._identities)
            deadline = time.monotonic() + within
            while self._running() and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            if not self._running():
                return []
        problems = []
        if left := pids_inside(self._identities):
            problems.append(f"processes {left} outlived SIGKILL")
        if unreaped := [p.pid for p in self._processes if p.poll() is None]:
            problems.append(f"processes {unreaped} did not exit")
        return problems

    def _running(self) -> bool:
        """Whether a process is still in a namespace, or one the lab started is not reaped.

        A process leaves its namespace early in its exit, before its parent can reap it: the
        second condition waits for the end of that exit.
        """
        unreaped = [process for process in self._processes if process.poll() is None]
        return bool(unreaped or pids_inside(self._identities))


@contextlib.contextmanager
def open_lab(nat: NatMode = "cone", *, stop_timeout: float = STOP_TIMEOUT_S) -> Iterator[Lab]:
    """Build the NAT lab, yield it, and take it all down when the block ends.

    Args:
        nat: The NAT mode both routers start in; :meth:`Lab.set_nat` changes one later.
        stop_timeout: Seconds processes get between SIGTERM and SIGKILL at the end.

    Raises:
        LabError: The lab cannot be built here (see :func:`missing`) or a command failed; what
            was built is taken down before it is raised.
    """
    reason = missing()
    if reason is not None:
        raise LabError(f"the NAT lab cannot run: {reason}")
    lab = Lab(_new_tag(), stop_timeout)
    atexit.register(lab.close)
    with termination_unwinds():
        try:
            lab._build(nat)
            yield lab
        finally:
            lab.close()
