"""Catch-up sync over libp2p: run :class:`~meshcrew.sync.SyncSession` on ``/meshcrew/sync/2.0.0``
(or ``/meshcrew/sync/1.0.0`` with a node that only speaks version 1).

:class:`SyncService` serves inbound sync streams and starts sessions itself: on every new
connection and every ``period_s``. Of two connected peers only the one with the lower public key
starts the automatic sessions, so a pair does not sync twice; either may call
:meth:`SyncService.sync_with` at any time.

The protocol id names the session's version. A node serves both; it opens version 2 first and,
if the peer refuses that protocol, version 1, and keeps using version 1 with that peer until it
connects again (an upgraded peer is found on its next connection).

A session offers only spaces where the peer is a member (by this node's view), so a space's
records are served only to its members: the peer's key is its peer id, authenticated by Noise.

Each session runs on its stream by :func:`~meshcrew.net.sync_pump.run_session`; given a
:class:`Verifier` (the node's worker processes, :class:`~meshcrew.store.VerifyPool`, so a
catch-up uses every core), received batches are checked away from trio's thread.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import trio

from meshcrew.errors import (
    ConnectionLost,
    DialError,
    IdentityError,
    MeshcrewError,
    NetError,
    PeerTimeout,
    RemoteProtocolError,
)
from meshcrew.identity import public_key_of_peer_id
from meshcrew.net.host import Host, PeerConnected
from meshcrew.net.scores import PROTOCOL_VIOLATION, STALLED, STRANGER_STREAM
from meshcrew.net.seam import log
from meshcrew.net.stream import Stream
from meshcrew.net.sync_pump import SyncEventHandler, run_session
from meshcrew.net.verifying import Verifier
from meshcrew.sync import (
    PROTOCOL_IDS,
    SYNC_VERSION,
    SYNC_VERSIONS,
    RecordSource,
    SyncSession,
    SyncStats,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

_MAX_ROUNDS = 64
"""Most sessions in a row with one peer (each moves up to MAX_RECORDS_PER_SPACE per space)."""
_TURNED_AWAY_KEPT = 256
"""Most peers remembered as refused strangers (a flood of new peer ids cannot grow it)."""
MAX_INBOUND_PER_PEER = 2
"""Inbound sync sessions one peer may hold at once."""


SyncCompleteHandler = Callable[[str, SyncStats], None]
"""``completed(peer_id, stats)``: a session with the peer ran to the end (either side started
it); ``stats.spaces_synced`` names the spaces it brought level."""


class SpeaksNoSync(DialError):
    """A connected peer refused every sync protocol version (not a meshcrew node, or a
    relay-only one)."""


def starts_sessions(local_key: bytes, remote_key: bytes) -> bool:
    """Whether this side starts the automatic sessions with that peer (the lower key does)."""
    return local_key < remote_key


def refusal_pause_s(period_s: float, decay_per_s: float, versions: int) -> float:
    """How long a peer that refused a sync stream is not asked again: at least a period, and as
    long as the charges one attempt may cost it take to drain (a STRANGER_STREAM per version
    tried: before identify, an attempt tries every version), at ``decay_per_s``, this node's, the
    peer's if it keeps the default. So those charges never add up (docs/sync.md)."""
    drained_s = versions * STRANGER_STREAM / decay_per_s if decay_per_s > 0 else 0.0
    return max(period_s, drained_s)


class SyncService:
    """Serves and starts sync sessions for one host.

    Args:
        host: the running host.
        source: the local replica.
        my_spaces: the spaces this member belongs to.
        is_member: ``is_member(space_id, member_key)`` by this node's view of each space.
        on_event: receives every event of every session (records to append, peer frontiers).
        period_s: how often connected peers are synced again.
        max_inbound: most inbound sessions at once; more are refused (reset).
        on_complete: called after every session that ran to the end, dialled or answered.
        verifier: checks received batches on worker threads; then ``on_event`` gets
            :class:`RecordsVerified` instead of :class:`~meshcrew.sync.RecordsReceived`.
        versions: the protocol versions served and tried, the preferred first (tests give
            ``(1,)`` to stand for a node of an older release).
    """

    def __init__(self, host: Host, source: RecordSource, my_spaces: Callable[[], Iterable[bytes]],
                 is_member: Callable[[bytes, bytes], bool], on_event: SyncEventHandler, *,
                 period_s: float = 60.0, max_inbound: int = 8,
                 on_complete: SyncCompleteHandler | None = None,
                 verifier: Verifier | None = None,
                 versions: Sequence[int] = SYNC_VERSIONS) -> None:
        self._host = host
        self._verifier = verifier
        self._versions = tuple(versions)
        self._peer_version: dict[str, int] = {}
        """Peers that refused the preferred version on this connection: what they speak."""
        self._source = source
        self._my_spaces = my_spaces
        self._is_member = is_member
        self._on_event = on_event
        self._on_complete = on_complete
        self._period_s = period_s
        self._inbound = trio.CapacityLimiter(max_inbound)
        self._inbound_of: dict[str, int] = {}
        """Inbound sessions running, per peer."""
        self._speaks_none: set[str] = set()
        """Connected peers that speak no sync version (noted once, not retried)."""
        self._outbound_busy: set[str] = set()
        self._again: set[str] = set()
        self._refused_at: dict[str, float] = {}
        """When peers (members by this node's view) last refused its sync stream: they count it
        a stranger, their view lags. Not asked again for a while."""
        self._turned_away: dict[str, None] = {}
        """Peers whose sync stream this node refused as strangers (their view may be ahead:
        asked once this node's view changes), oldest first, at most _TURNED_AWAY_KEPT."""
        self._nursery: trio.Nursery | None = None
        self.last_stats: dict[str, SyncStats] = {}
        """The last completed session's statistics per peer id."""

    def new_session(self, remote_key: bytes, version: int = SYNC_VERSION) -> SyncSession:
        """A session offering the spaces both this member and the peer belong to."""
        offer = [s for s in self._my_spaces() if self._is_member(s, remote_key)]
        return SyncSession(self._host.public_key, remote_key, offer, self._source,
                           version=version)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve sync streams and start sessions on connection and periodically, until cancelled."""
        for version in self._versions:
            self._host.set_stream_handler(PROTOCOL_IDS[version], self._server_of(version))
        try:
            with self._host.watch_connections() as connections:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    task_status.started()
                    nursery.start_soon(self._sync_periodically, nursery)
                    async for event in connections:
                        if isinstance(event, PeerConnected):
                            self._peer_version.pop(event.peer_id, None)
                            self._speaks_none.discard(event.peer_id)
                            nursery.start_soon(self._sync_quietly, event.peer_id)
        finally:
            if self._verifier is not None:
                self._verifier.close()

    def sync_soon(self, peer_id: str) -> None:
        """Start a session with a connected peer now, whichever side usually starts.

        If a session this side started with the peer is running, another runs right after it,
        so records that arrived meanwhile are not left for the next period. Failures are only
        logged.
        """
        if self._nursery is None:
            raise RuntimeError("the sync service is not running")
        if peer_id in self._outbound_busy:
            self._again.add(peer_id)
            return
        self._nursery.start_soon(self._sync_rounds, peer_id)

    async def sync_with(self, peer_id: str) -> SyncStats:
        """Run one session with a connected peer now.

        Raises:
            RemoteProtocolError, NetError: as :func:`run_session`; the peer is penalized for
                protocol violations and stalls.
        """
        try:
            stream, version = await self._open(peer_id)
        except SpeaksNoSync:
            raise
        except DialError:  # the way a refusal shows: the reset comes while the stream opens
            self._note_refusal(peer_id)
            raise
        try:
            session = self.new_session(stream.remote_key, version)
        except BaseException:
            await stream.reset()
            raise
        try:
            return await self._run_and_score(stream, session)
        except ConnectionLost:
            if not session.stats.bytes_received:  # reset before the peer's hello: refused too
                self._note_refusal(peer_id)
            raise

    def _note_refusal(self, peer_id: str) -> None:
        # A dropped connection refused nothing: only a reset with the connection still up counts.
        if peer_id in self._host.connected_peers():
            self._refused_at[peer_id] = trio.current_time()

    def _refused_lately(self, peer_id: str) -> bool:
        refused_at = self._refused_at.get(peer_id)
        if refused_at is None:
            return False
        pause_s = refusal_pause_s(self._period_s, self._host.config.penalty_decay_per_s,
                                  len(self._versions))
        if trio.current_time() - refused_at < pause_s:
            return True
        del self._refused_at[peer_id]
        return False

    async def _open(self, peer_id: str) -> tuple[Stream, int]:
        """A sync stream to the peer in the newest version both speak, and that version."""
        known = self._peer_version.get(peer_id)
        versions = [v for v in self._versions if known is None or v <= known]
        # A failure to open a version the peer announced (identify) is the moment's (a reset:
        # it does not count this node as a member yet), not a missing version, and must not
        # stop this node from asking again later. (What it did not announce proves nothing:
        # identify may have run before its handlers were set.)
        said = self._host.protocols_of(peer_id)
        for index, version in enumerate(versions):
            try:
                stream = await self._host.open_stream(peer_id, PROTOCOL_IDS[version])
            except DialError:
                if PROTOCOL_IDS[version] in said:
                    raise
                if index + 1 == len(versions):
                    # Only what identify said proves a missing version; before it has said
                    # anything, a reset (it took this node for a stranger) looks the same.
                    if said and peer_id in self._host.connected_peers():
                        raise SpeaksNoSync(f"{peer_id} speaks no sync version.") from None
                    raise
                continue  # refused (or the connection failed, which the next try shows)
            if index:
                log.info("%s speaks sync version %d", peer_id, version)
                self._peer_version[peer_id] = version
            return stream, version
        raise DialError(f"No sync version to open with {peer_id}.")

    def _server_of(self, version: int) -> Callable[[Stream], Awaitable[None]]:
        async def serve(stream: Stream) -> None:
            await self._serve(stream, version)
        return serve

    def membership_changed(self) -> None:
        """This node's view of who is in its spaces changed: the connected peers it turned away
        and now counts get a session at once, from this side (they are holding back after the
        refusal, and may hold records this node lacks)."""
        connected = set(self._host.connected_peers())
        for peer_id in list(self._turned_away):
            if peer_id not in connected:
                del self._turned_away[peer_id]
            elif self.shares_a_space(public_key_of_peer_id(peer_id)):
                del self._turned_away[peer_id]
                self.sync_soon(peer_id)

    def shares_a_space(self, remote_key: bytes) -> bool:
        """Whether this node would offer the peer any space (a member or carrier of one)."""
        return any(self._is_member(s, remote_key) for s in self._my_spaces())

    async def _serve(self, stream: Stream, version: int) -> None:
        # Strangers get no session (not even an empty hello), so they hold no slot; a member
        # holds at most MAX_INBOUND_PER_PEER of them, so strangers and one busy member cannot
        # keep the other members' catch-up waiting (issue 17).
        peer_id = stream.peer_id
        if not self.shares_a_space(stream.remote_key):
            log.debug("refusing a sync stream from %s: it shares no space with this node", peer_id)
            self._host.penalize(peer_id, STRANGER_STREAM, "sync stream from a stranger")
            self._turned_away.pop(peer_id, None)
            self._turned_away[peer_id] = None
            if len(self._turned_away) > _TURNED_AWAY_KEPT:
                del self._turned_away[next(iter(self._turned_away))]
            await stream.reset()
            return
        if self._inbound_of.get(peer_id, 0) >= MAX_INBOUND_PER_PEER:
            await self._turn_away_busy(stream, version, f"it has {MAX_INBOUND_PER_PEER} open")
            return
        try:
            self._inbound.acquire_nowait()
        except trio.WouldBlock:
            await self._turn_away_busy(stream, version, "too many sessions")
            return
        self._inbound_of[peer_id] = self._inbound_of.get(peer_id, 0) + 1
        try:
            stats = await self._run_and_score(stream, self.new_session(stream.remote_key,
                                                                       version))
        except MeshcrewError as exc:
            log.info("sync with %s failed: %s", peer_id, exc)
            return
        finally:
            self._inbound.release()
            left = self._inbound_of.pop(peer_id, 1) - 1
            if left:
                self._inbound_of[peer_id] = left
        if stats.more_from_peer:  # the peer stopped at the per-session cap: ask for the rest
            self.sync_soon(stream.peer_id)

    async def _turn_away_busy(self, stream: Stream, version: int, why: str) -> None:
        """Turn a member away for now: this node's hello goes first, then the stream ends. A
        reset before any hello is how a stranger is refused, which holds the asker back for a
        pause (:func:`refusal_pause_s`); a member turned away because this node is busy asks
        again at its next trigger."""
        log.info("refusing a sync stream from %s: %s", stream.peer_id, why)
        try:
            await stream.send_all(self.new_session(stream.remote_key, version).data_to_send())
        except NetError:
            await stream.reset()
            return
        await stream.aclose()

    async def run_on(self, stream: Stream, session: SyncSession) -> SyncStats:
        """Run a session the caller made (e.g. for one space) on a stream it opened or
        accepted, scored and reported like every other session."""
        return await self._run_and_score(stream, session)

    async def _run_and_score(self, stream: Stream, session: SyncSession) -> SyncStats:
        try:
            stats = await run_session(stream, session, self._on_event,
                                      timeout_s=self._host.config.session_timeout_s,
                                      verifier=self._verifier)
        except RemoteProtocolError as exc:
            self._host.penalize(stream.peer_id, PROTOCOL_VIOLATION, str(exc))
            raise
        except PeerTimeout as exc:
            self._host.penalize(stream.peer_id, STALLED, str(exc))
            raise
        self.last_stats[stream.peer_id] = stats
        # A session with the peer ran to the end (it opened one, or took one on another
        # protocol, as a carrier brought a space does): it counts this node now, so its refusal
        # no longer holds this side back.
        self._refused_at.pop(stream.peer_id, None)
        if self._on_complete is not None:
            self._on_complete(stream.peer_id, stats)
        return stats

    async def _sync_quietly(self, peer_id: str) -> None:
        """A session started by this side (if it is the starter), failures only logged."""
        try:
            remote_key = public_key_of_peer_id(peer_id)
        except IdentityError:
            return
        if not starts_sessions(self._host.public_key, remote_key):
            return
        if peer_id in self._outbound_busy:
            return
        await self._sync_rounds(peer_id)

    async def _sync_rounds(self, peer_id: str) -> None:
        """Sessions with a peer until nothing is left over (the cap) and none was asked for.

        None with a peer that shares no space with this node (it would learn that this is a
        meshcrew node, and nothing else), or that speaks no sync version."""
        try:
            remote_key = public_key_of_peer_id(peer_id)
        except IdentityError:
            return
        if peer_id in self._speaks_none or not self.shares_a_space(remote_key):
            return
        if self._refused_lately(peer_id):  # every trigger waits: a new record, a new connection
            log.debug("not asking %s to sync: it refused lately", peer_id)
            return
        self._outbound_busy.add(peer_id)
        try:
            for _ in range(_MAX_ROUNDS):
                self._again.discard(peer_id)
                try:
                    stats = await self.sync_with(peer_id)
                except SpeaksNoSync:
                    log.info("%s speaks no sync version; not asking again while connected",
                             peer_id)
                    self._speaks_none.add(peer_id)
                    return
                except NetError as exc:
                    log.info("sync with %s failed: %s", peer_id, exc)
                    if not self._asked_again(peer_id):
                        return
                    continue  # e.g. a hole punch's, cut with the relayed connection it ran on
                except RemoteProtocolError as exc:
                    log.info("sync with %s failed: %s", peer_id, exc)
                    return
                except MeshcrewError as exc:  # this node's own fault: logged, never fatal
                    log.warning("sync with %s failed here: %s", peer_id, exc)
                    return
                if not stats.more_from_peer and peer_id not in self._again:
                    return
        finally:
            self._outbound_busy.discard(peer_id)
            self._again.discard(peer_id)

    def _asked_again(self, peer_id: str) -> bool:
        """Whether a session the peer failed on the network is followed by the one asked for
        meanwhile (:meth:`sync_soon`): not when the peer is gone or refused this node."""
        return (peer_id in self._again and peer_id in self._host.connected_peers()
                and not self._refused_lately(peer_id))

    async def _sync_periodically(self, nursery: trio.Nursery) -> None:
        while True:
            # Jitter spreads the sessions of many nodes that started together.
            await trio.sleep(self._period_s * random.uniform(0.8, 1.2))
            self._speaks_none.clear()  # ask again once a period: it may have been too early
            for peer_id in self._host.connected_peers():
                nursery.start_soon(self._sync_quietly, peer_id)
