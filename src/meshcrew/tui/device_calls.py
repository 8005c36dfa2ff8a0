"""A member's devices, as the app's backend offers them: list, link, revoke, and wait for a link.

The calls are the member service's (:class:`meshcrew.service.devices.DeviceActions`) and the
node's (:func:`meshcrew.node.linking.link_device`, :func:`meshcrew.node.linking.wait_for_link`),
the same ones ``meshcrew devices`` and ``meshcrew init --link`` use:

* :class:`DeviceCalls` is the part of :class:`~meshcrew.tui.backend.Backend` the device screens
  use;
* :class:`OfflineDeviceCalls` is how an app without a node offers them (a
  :class:`~meshcrew.tui.service_backend.LocalBackend`): the list and a revocation work on the
  replica; linking needs a node, so it is refused with a sentence saying what to do.
  :class:`~meshcrew.tui.node_backend.NodeBackend` links through its node;
  :class:`~meshcrew.tui.attached.AttachedBackend` asks the node it is attached to.

This module imports no Textual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from meshcrew.errors import NodeNotRunning
from meshcrew.service import Member
from meshcrew.service.devices import DeviceEntry

if TYPE_CHECKING:  # the node's modules load trio and libp2p: only once a node runs
    from meshcrew.node.reports import LinkResult

LINK_WAIT_S = 900.0
"""How long the first-run screen waits for the laptop holding the member key (as ``init
--link`` does by default)."""

NO_NODE = ("No node runs in this app (it was started without the network), and linking a "
           "device needs one: start meshcrew with its node, or use `meshcrew init --link` and "
           "`meshcrew devices add CODE`.")


class DeviceCalls(Protocol):
    """The device calls of a backend. Each raises MeshcrewError with one sentence."""

    def devices(self) -> list[DeviceEntry]:
        """This member's devices: the member key first, then the linked ones (see
        :meth:`meshcrew.service.devices.DeviceActions.devices`)."""
        ...

    def revoke_device(self, device: bytes) -> list[bytes]:
        """Revoke ``device`` in every space it is in and rotate the keys there (only where the
        member key is); returns the ids of the records made."""
        ...

    async def link_device(self, code: str) -> LinkResult:
        """Reach the new device of a link code and link it (only where the member key is)."""
        ...

    async def wait_for_link(self, show: Callable[[str], None], *, within_s: float = LINK_WAIT_S,
                            on_records: Callable[[int], None] | None = None
                            ) -> LinkResult | None:
        """On a new device: show a link code (``show`` is given it once) and wait until the
        laptop holding the member key links this one; None if none did within ``within_s``.
        Cancelling the wait ends it: the code then stops working."""
        ...


class OfflineDeviceCalls:
    """The device calls over the member service alone (mixed into the offline backend)."""

    service: Member

    def devices(self) -> list[DeviceEntry]:
        """See :meth:`DeviceCalls.devices`."""
        return self.service.devices()

    def revoke_device(self, device: bytes) -> list[bytes]:
        """See :meth:`DeviceCalls.revoke_device`."""
        return self.service.revoke_device(device)

    async def link_device(self, code: str) -> LinkResult:
        """Refused: linking needs a node."""
        raise NodeNotRunning(NO_NODE)

    async def wait_for_link(self, show: Callable[[str], None], *, within_s: float = LINK_WAIT_S,
                            on_records: Callable[[int], None] | None = None
                            ) -> LinkResult | None:
        """Refused: linking needs a node."""
        raise NodeNotRunning(NO_NODE)
