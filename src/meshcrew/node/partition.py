"""A network partition on demand, for chaos tests: the node cuts itself off from chosen peers.

``partition`` (control op, with a list of peer ids) bans each peer through the host's ban list:
the node disconnects it, refuses its connections (evicted as soon as they open), resets its
streams unread, never dials it and drops its gossip. ``heal`` (with a list of peer ids) lifts
those bans. The bans are saved with the peer book like any ban, so a partition outlives a node
restart until healed. Calling it on both sides of the cut makes the partition symmetric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshcrew.net import Host

PARTITION_OPS = frozenset({"partition", "heal"})
_WHY = "partitioned off on request (control socket)"


def partition_op(host: Host, op: str, peer_ids: Any) -> list[str]:
    """Run ``partition PEER_IDS`` or ``heal PEER_IDS`` on the host's ban list; return the peer
    ids banned now."""
    for peer_id in peer_ids:
        peer = str(peer_id)
        if peer == host.peer_id:
            continue
        if op == "partition" and not host.scores.is_banned(peer):
            host.penalize(peer, host.config.ban_threshold, _WHY)
        elif op == "heal":
            host.forgive(peer)
    return sorted(host.scores.banned)
