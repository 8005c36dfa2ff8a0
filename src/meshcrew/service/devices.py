"""A member's devices, for the member service: certify, adopt, revoke, list.

The rules are in :mod:`meshcrew.spaces.devices`. Here is what each side does with them:

* On the device that holds the member key (the first device), :meth:`DeviceActions.certify_device`
  signs a new device's key: the certificate travels to the new device (``meshcrew devices
  add``, over the link handshake).
* On the new device (its own key is this service's identity),
  :meth:`DeviceActions.adopt_certificate` posts that certificate as its first record in every
  space of the member its replica holds.
  Once the member's node takes those records in, its housekeeping rotates the keys so the
  device can read (:meth:`meshcrew.service.views.SpaceView.should_rotate`).
* The new device keeps its certificate in its home folder (``device.cert``: msgpack ``[1,
  member key, signature]``), so it can adopt it again in a space its member joins later: once
  such a space's records reach it (the member's node brings them, :mod:`meshcrew.node.following`)
  and its member is let in there, the housekeeping after records arrive posts the certificate
  as the device's first record in it (:meth:`DeviceActions.adopt_where_let_in`).
* :meth:`DeviceActions.revoke_device` (first device again) posts the revocation in every space the
  device is in, and rotates the keys there at once: the revoked device reads nothing new.

These are mixed into :class:`meshcrew.service.member.Member`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

import msgpack

from meshcrew.errors import SpaceError
from meshcrew.identity import Identity, fingerprint
from meshcrew.records import KEY_BYTES, SIG_BYTES, Record
from meshcrew.service.views import SpaceView
from meshcrew.spaces import Draft, SpaceState
from meshcrew.spaces.devices import (
    certify_device,
    device_certificate,
    member_let_in,
    revoke_device,
    unlink_device,
    verify_certificate,
)
from meshcrew.store import Replica

log = logging.getLogger("meshcrew.service")

CERTIFICATE_FORMAT = 1
"""The version of the ``device.cert`` file's array."""


class _Signs(Protocol):
    """What the device actions use of the member service."""

    @property
    def identity(self) -> Identity: ...
    @property
    def replica(self) -> Replica: ...
    def view(self, space_id: bytes) -> SpaceView: ...
    def _sign_and_append(self, space_id: bytes | None, made: Draft) -> Record: ...
    def _rotate_while_needed(self, space_id: bytes) -> list[Record]: ...


@dataclass(frozen=True, slots=True)
class HeldCertificate:
    """This device's certificate, as its home folder keeps it."""

    member: bytes
    """The member key that signed it."""
    signature: bytes


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One device of this member, as the member's spaces know it."""

    key: bytes
    fingerprint: str
    first: bool
    """The member key itself (the device it was made on)."""
    revoked: bool
    linked_ts: int | None
    """When its certificate was signed (None for the member key)."""
    last_ts: int | None
    """Its newest record in any space (when it was last heard of)."""
    spaces: int
    """In how many of the member's spaces it is certified (or, for the member key, a member)."""

    def to_json(self) -> dict[str, object]:
        """The entry for ``--json``."""
        return {"key": self.key.hex(), "fingerprint": self.fingerprint, "first": self.first,
                "revoked": self.revoked, "linked_ts": self.linked_ts, "last_ts": self.last_ts,
                "spaces": self.spaces}


class DeviceActions:
    """Linking and revoking this member's devices (mixed into the member service)."""

    def linked_to(self: _Signs) -> bytes | None:
        """The member whose device this node's key is (None: it is a member key itself)."""
        me = self.identity.public_key
        for sid in self.replica.spaces():
            device = self.view(sid).state.devices.get(me)
            if device is not None:
                return device.member
        return None

    def held_certificate(self: _Signs) -> HeldCertificate | None:
        """This device's certificate from its home folder (None on a node that was never
        linked, such as the one holding the member key). A file that does not parse, or that
        is not a certificate of this device's key, is ignored and logged."""
        path = self.replica.home.certificate_file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the device certificate %s: %s", path, exc.strerror)
            return None
        try:
            fields = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            fields = None
        if not (isinstance(fields, list) and len(fields) == 3
                and fields[0] == CERTIFICATE_FORMAT and isinstance(fields[1], bytes)
                and len(fields[1]) == KEY_BYTES and isinstance(fields[2], bytes)
                and len(fields[2]) == SIG_BYTES
                and verify_certificate(fields[1], self.identity.public_key, fields[2])):
            log.warning("ignoring %s: it is not a certificate of this device's key", path)
            return None
        return HeldCertificate(fields[1], fields[2])

    def keep_certificate(self: _Signs, member: bytes, certificate: bytes) -> None:
        """Keep ``member``'s certificate of this device in the home folder (atomically)."""
        if not verify_certificate(member, self.identity.public_key, certificate):
            raise SpaceError("The certificate is not your member key's signature over this "
                             "device's key.")
        path = self.replica.home.certificate_file
        fresh = path.with_name(path.name + ".new")
        fresh.write_bytes(msgpack.packb([CERTIFICATE_FORMAT, member, certificate],
                                        use_bin_type=True))
        os.replace(fresh, path)

    def adopt_where_let_in(self: _Signs, space_id: bytes) -> Record | None:
        """On a linked device: post its certificate in ``space_id`` if it has not written
        there yet and its member is let in (a space the member joined after linking it);
        returns the record, else None. The housekeeping after records arrive calls it."""
        held = DeviceActions.held_certificate(self)  # (a member key's node: no file, at once)
        if held is None or self.replica.frontier(space_id).get(self.identity.public_key):
            return None  # never linked, or written there already
        state = self.view(space_id).state
        if not member_let_in(state, held.member):
            return None
        return self._sign_and_append(space_id, device_certificate(state, held.member,
                                                                  held.signature))

    def require_member_key(self: _Signs, action: str) -> None:
        """Raise SpaceError, naming the laptop that holds the member key, if this node is a
        linked device (only the member key certifies or revokes devices)."""
        member = DeviceActions.linked_to(self)
        if member is None:
            return
        names = (self.view(sid).names.get(member) for sid in self.replica.spaces())
        name = next((n for n in names if n), None)
        whose = f"{name}'s first laptop" if name else "your first laptop"
        raise SpaceError(
            f"Only the laptop with your member key can {action}: {whose}, the one where "
            f"`meshcrew init` made your identity (`meshcrew whoami` there shows the member "
            f"fingerprint {fingerprint(member)}). This laptop is a linked device: it holds "
            "its own key only (see docs/spaces.md, A member's devices).")

    def certify_device(self: _Signs, device: bytes) -> bytes:
        """The member key's certificate of ``device``; only the node holding the member key
        (a member key that is nobody's device) can make it."""
        DeviceActions.require_member_key(self, "link another device")
        return certify_device(self.identity.signing_key, device)

    def adopt_certificate(self: _Signs, member: bytes, certificate: bytes) -> list[bytes]:
        """Post ``member``'s certificate of this device in each of the member's spaces that
        the replica holds and this device has not written in yet; returns the records' ids."""
        me = self.identity.public_key
        DeviceActions.keep_certificate(self, member, certificate)  # for spaces joined later
        made = []
        for sid in self.replica.spaces():
            view = self.view(sid)
            state = view.state
            if not member_let_in(state, member) or self.replica.frontier(sid).get(me):
                continue
            made.append(self._sign_and_append(sid, device_certificate(state, member,
                                                                      certificate)).id)
        return made

    def revoke_device(self: _Signs, device: bytes) -> list[bytes]:
        """Revoke ``device`` in every space it is in, and rotate the keys there; returns the
        ids of the records made (revocations and rotations)."""
        DeviceActions.require_member_key(self, "revoke a device")
        me = self.identity.public_key
        signature = revoke_device(self.identity.signing_key, device)
        made: list[bytes] = []
        for sid in self.replica.spaces():
            state = self.view(sid).state
            known = state.devices.get(device)
            if known is None or known.member != me or known.revoked_by is not None:
                continue
            made.append(self._sign_and_append(sid, unlink_device(state, me, device,
                                                                 signature)).id)
            made += [r.id for r in self._rotate_while_needed(sid)]
        if not made:
            raise SpaceError("That key is not a current device of yours in any space here.")
        return made

    def keep_revoked_out(self: _Signs, space_id: bytes) -> list[Record]:
        """On the node holding the member key: revoke here any device of this member that is
        current here but revoked in another space, before anyone rotates the keys to it; returns
        the revocations made. A certificate names no space, so a lost laptop can post its own in
        a space its member joined after revoking it (from the records of any node that serves
        it them); the housekeeping after records arrive calls this first."""
        me = self.identity.public_key
        state = self.view(space_id).state
        if not any(d.member == me for d in state.devices.values()):
            return []
        made = []
        for key in DeviceActions.revoked_elsewhere(self, space_id):
            if state.devices[key].member != me:
                continue
            log.warning("device %s, revoked, posted its certificate in space %s: revoking it "
                        "there too", fingerprint(key), space_id.hex()[:12])
            made.append(self._sign_and_append(space_id, unlink_device(
                self.view(space_id).state, me, key, revoke_device(self.identity.signing_key,
                                                                  key))))
        return made

    def revoked_elsewhere(self: _Signs, space_id: bytes) -> list[bytes]:
        """Devices current in ``space_id`` that are revoked in another space the replica holds
        (a lost laptop that posted its certificate in a space joined after it was revoked): no
        rotation here may seal the keys to them until the member key revokes them here too."""
        current = [d.key for d in self.view(space_id).state.devices.values()
                   if d.revoked_by is None]
        found: set[bytes] = set()
        for sid in self.replica.spaces() if current else ():
            if sid != space_id:
                elsewhere = self.view(sid).state.devices
                found |= {key for key in current if (device := elsewhere.get(key)) is not None
                          and device.revoked_by is not None}
        return sorted(found)

    def devices(self: _Signs) -> list[DeviceEntry]:
        """This member's devices, from every space the replica holds: the member key first,
        then the others by when they were linked."""
        views = [self.view(sid) for sid in self.replica.spaces()]
        me = self.identity.public_key
        member = next((v.my_member for v in views if v.my_member != me), me)
        found: dict[bytes, DeviceEntry] = {}
        for view in views:
            state = view.state
            for key in _keys_of(member, state):
                device = state.devices.get(key)
                revoked = device is not None and device.revoked_by is not None
                cert = state.records.get(device.cert_id) if device is not None else None
                head = view.frontier.get(key)
                last = state.records.get(head.id) if head is not None else None
                held = found.get(key)
                found[key] = DeviceEntry(
                    key=key, fingerprint=fingerprint(key), first=key == member,
                    revoked=revoked or (held is not None and held.revoked),
                    linked_ts=(cert.ts if cert is not None
                               else held.linked_ts if held is not None else None),
                    last_ts=max((t for t in (last.ts if last else None,
                                             held.last_ts if held else None) if t is not None),
                                default=None),
                    spaces=(held.spaces if held else 0) + 1)
        return sorted(found.values(), key=lambda d: (not d.first, d.linked_ts or 0, d.key))


def _keys_of(member: bytes, state: SpaceState) -> list[bytes]:
    """The member key (if a member of this space) and its devices certified here."""
    keys = [member] if member in state.members else []
    return keys + [d.key for d in state.devices.values() if d.member == member]
