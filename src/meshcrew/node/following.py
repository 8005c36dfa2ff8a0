"""A member's devices follow the member into spaces joined after they were linked.

A linked laptop cannot join a space itself (it would join as a member of its own): the member
joins on the laptop that holds the member key, and the laptop follows. Both sides:

- **The member's node brings the space.** When one of the member's devices is connected (a
  device certified in any space this node holds, not revoked in any) and is not a current
  device in one of the member's spaces where the member has been let in,
  :class:`DeviceFollowing` offers it that space on the carry protocol
  (:func:`meshcrew.node.carrying.bring`: ``[space id]``, then an ordinary sync session for that
  one space). Any node of the member does it, the member key's or another device's.
- **The device takes it** (:meth:`DeviceFollowing.takes_from`) from its member's key or
  another current device of its member, and only then: the housekeeping after records arrive
  posts its certificate there (:meth:`meshcrew.service.devices.DeviceActions.adopt_where_let_in`),
  which its next sync sends to the member's node (``Serving.shares`` counts a device certified
  elsewhere as its member), whose housekeeping rotates the keys to it.
- **A device no one knows yet brings its certificates.** A laptop restored from a backup as a
  new device (``meshcrew restore --as-device``) posted its certificate in every space, but no
  other node has seen it in any: none would sync a space with it. So a linked device brings
  each of its spaces to its member key's node, once per connection, until that node is known
  to hold the device's chain there (its receipts); the member's node takes it like a member
  bringing a space (it receives only, from a key it does not know yet) and rotates the keys.

A device that was linked while its member was in no space is known to no space, so nobody can
bring it one: it waits for the member to link it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from meshcrew.net import Host, Stream
from meshcrew.node.bringing import Bringer, BringOne
from meshcrew.node.membership import Membership
from meshcrew.node.receipts import Receipts
from meshcrew.service import Member
from meshcrew.spaces.devices import member_let_in

log = logging.getLogger("meshcrew.node")

RunSync = Callable[[Stream, list[bytes]], Awaitable[object]]


class DeviceFollowing(Bringer):
    """Brings the member's spaces to the member's connected devices that are not in them, and
    takes such spaces from the member's nodes.

    Args:
        host: the running host.
        membership: who is a member (and which keys are devices) of what.
        member: this node's member service (for the certificate this device holds).
        bring_one: ``(peer id, space id)``: runs :func:`meshcrew.node.carrying.bring`.
        receipts: what each peer is known to hold (whether the member's node holds this
            device's chain yet).
    """

    def __init__(self, host: Host, membership: Membership, member: Member,
                 bring_one: BringOne, receipts: Receipts) -> None:
        super().__init__(host, bring_one)
        self._membership = membership
        self._member = member
        self._receipts = receipts

    def due(self) -> list[tuple[bytes, bytes]]:
        """``(space, key)`` pairs to bring: each of the member's spaces where the member is let
        in, to each device of the member's that is not a current device there; and on a linked
        device, each of its spaces to its member key's node while that is not known to hold
        this device's chain there."""
        me = self._host.public_key
        devices = self._membership.devices()
        mine = devices.get(me, me)
        others = sorted(k for k, m in devices.items() if m == mine and k != me)
        found = []
        for space_id in self._membership.my_spaces() if others else ():
            state = self._membership.state(space_id)
            if state is None or not member_let_in(state, mine):
                continue
            active = self._membership.active(space_id)
            found += [(space_id, key) for key in others if key not in active]
        held = self._member.held_certificate()
        if held is not None:
            for space_id in self._membership.my_spaces():
                theirs = self._receipts.frontier(space_id, held.member)
                if theirs is None or me not in theirs:
                    found.append((space_id, held.member))
        return found

    def answered(self, peer_id: str, space_id: bytes, refused: str | None) -> None:
        if refused:
            log.info("device %s did not take space %s: %s", peer_id, space_id.hex()[:12],
                     refused)
        else:
            log.info("brought space %s to device %s", space_id.hex()[:12], peer_id)

    def takes_from(self, remote: bytes) -> bool:
        """Whether this node is a linked device and ``remote`` is its member key or another
        current device of its member (whose spaces it follows)."""
        held = self._member.held_certificate()
        if held is None or remote == self._host.public_key:
            return False
        return remote == held.member or self._membership.devices().get(remote) == held.member
