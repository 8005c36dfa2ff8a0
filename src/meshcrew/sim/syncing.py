"""Catch-up sync between simulated nodes: real :class:`~meshcrew.sync.SyncSession` pairs.

As ``meshcrew.net.syncing`` does, a session starts on every new connection and, from each node's
periodic task (:meth:`SyncDriver.sync_peers`), with each connected peer; only the side with the
lower public key starts one, and a pair runs one session at a time. Each side offers the spaces
where both are members by its own view, and its session reads its own replica. The bytes each
side writes cross the simulated connection (uplink, latency, loss); what a side receives is fed
to its session, and the records it yields go to the node's ingest queue, as the node's
``on_event`` would append them. A lost flight resets the stream: both sessions are dropped, and
what already arrived is kept.

Fast path (``NodeParams.fast_path``): when every space both sides offer has the same frontier
on both sides (the nodes' frontier digests are equal), the session's outcome is fixed by the
protocol — each side sends one ``hello`` and nothing changes — so its bytes are counted instead
of re-running it. Any difference runs the real session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from meshcrew.errors import MeshcrewError
from meshcrew.sim.network import Conn, Network, Traffic
from meshcrew.sim.node import SimNode
from meshcrew.sim.params import NodeParams
from meshcrew.sync import RecordsReceived, SyncSession
from meshcrew.sync.wire import SYNC_VERSION, Hello, Offer, encode_message

IngestFn = Callable[[int, tuple[bytes, ...]], None]
"""``ingest(node, raws)``: records a session received, for the node to append."""


@cache
def hello_bytes(offers: int) -> int:
    """Bytes of a ``hello`` offering ``offers`` spaces, as the real encoder frames it."""
    return len(encode_message(Hello(SYNC_VERSION, tuple(Offer(bytes(16), bytes(16))
                                                        for _ in range(offers)))))


@dataclass(slots=True)
class SyncStats:
    """Counters over the whole run."""

    started: int = 0
    counted_in_sync: int = 0
    """Sessions taken by the fast path."""
    completed: int = 0
    reset: int = 0
    """Sessions dropped because a flight was lost or the connection died."""
    records_sent: int = 0


@dataclass(slots=True, eq=False)
class _Run:
    """One session between two nodes on one connection."""

    conn: Conn
    starter: int
    sessions: dict[int, SyncSession]
    dead: bool = False


class SyncDriver:
    """Starts, carries and finishes sync sessions for every node of a simulation."""

    def __init__(self, net: Network, nodes: list[SimNode], params: NodeParams,
                 ingest: IngestFn) -> None:
        self.net = net
        self.nodes = nodes
        self.params = params
        self.ingest = ingest
        self.stats = SyncStats()
        net.on_open.append(self._on_open)

    def _starter(self, conn: Conn) -> int:
        a, b = conn.a, conn.b
        return a if self.nodes[a].public < self.nodes[b].public else b

    def _on_open(self, conn: Conn) -> None:
        conn.starter = self._starter(conn)
        self.start(conn)

    def sync_peers(self, node: int) -> None:
        """The node's periodic sync: a session with each connected peer it starts sessions with."""
        for conn in list(self.net.conns[node].values()):
            if conn.starter == node:
                self.start(conn)

    def start(self, conn: Conn) -> None:
        """Start a session on ``conn`` unless one runs there (the lower key starts it)."""
        if not conn.alive or conn.session is not None:
            return
        a = conn.starter
        b = conn.other(a)
        na, nb = self.nodes[a], self.nodes[b]
        self.stats.started += 1
        offers_a, offers_b = na.offers(nb.public), nb.offers(na.public)
        common = [s for s in offers_a if s in offers_b]
        if self.params.fast_path and all(na.digest[s] == nb.digest[s] for s in common):
            self._count_in_sync(conn, a, b, len(offers_a), len(offers_b))
            return
        run = _Run(conn, a, {a: SyncSession(na.public, nb.public, offers_a, na.store)})
        conn.session = run
        self._pump(run, a)

    def _count_in_sync(self, conn: Conn, a: int, b: int, offers_a: int, offers_b: int) -> None:
        # A lost in-sync exchange changes nothing either, so no loss is drawn for it.
        self.stats.counted_in_sync += 1
        for node, offers in ((a, offers_a), (b, offers_b)):
            self.net.charge_conn(conn, node, hello_bytes(offers), Traffic.SYNC)

    def _pump(self, run: _Run, node: int) -> None:
        session = run.sessions[node]
        peer = run.conn.other(node)
        while data := session.data_to_send():
            if not self.net.send(run.conn, node, len(data), Traffic.SYNC, self._arrive, run,
                                 peer, data):
                self._drop(run)
                return
        self._finish_if_complete(run)

    def _arrive(self, run: _Run, node: int, data: bytes) -> None:
        if run.dead:
            return
        target = self.nodes[node]
        session = run.sessions.get(node)
        if session is None:  # the stream opens at the other side with its first bytes
            peer = self.nodes[run.conn.other(node)]
            session = SyncSession(target.public, peer.public, target.offers(peer.public),
                                  target.store)
            run.sessions[node] = session
        try:
            events = session.receive_data(data)
        except MeshcrewError:
            self._drop(run)
            raise
        for event in events:
            if isinstance(event, RecordsReceived):
                self.ingest(node, event.raws)
        self._pump(run, node)

    def _finish_if_complete(self, run: _Run) -> None:
        if run.dead or len(run.sessions) < 2 or not all(s.complete for s in run.sessions.values()):
            return
        run.conn.session = None
        self.stats.completed += 1
        self.stats.records_sent += sum(s.stats.records_sent for s in run.sessions.values())

    def _drop(self, run: _Run) -> None:
        if not run.dead:
            run.dead = True
            self.stats.reset += 1
            if run.conn.session is run:
                run.conn.session = None

    def node_down(self, node: int) -> None:
        """The node went down: its sessions end with its connections."""
        for conn in self.net.conns[node].values():
            if isinstance(conn.session, _Run):
                self._drop(conn.session)

