"""A member's devices: certificates and revocations signed by the member key.

A member is known by one key (their *member key*: the identity others know, whose fingerprint
they compare). Each laptop of the member has a key of its own (a *device key*): it signs that
device's records, so each device writes its own chain in each space and is its own libp2p
peer. The member key vouches for a device by signing it, and revokes it the same way:

* **Certificate.** ``sign(member key, DEVICE_DOMAIN || member || device)``. The device posts it
  in each space as its **first record** there (kind ``device``, body ``{m, s, a}``, ``a``
  naming the newest epoch sealed to the member it saw, so it is ordered after its member was
  let in); its
  later records chain onto it, so nothing it writes is ever ordered before its certificate. The
  signature names no space: one certificate serves every space of the member.
* **Revocation.** ``sign(member key, UNLINK_DOMAIN || member || device)``, posted (kind
  ``unlink``) by another current device of the same member, or by the member key itself, with
  the revoked device's last record that still counts (seq and id), as a removal names a
  member's: the device's later records are refused (``device_revoked``) whatever the arrival
  order. A revoked device stays revoked.
* **The member key is the first device.** A member key that signs records itself (every
  replica made before devices existed) is simply its member's first device: nothing changes
  for it.

Only a node that holds the member key can make either signature, so a device without it (a
linked laptop) can neither certify a device nor revoke one: a lost laptop cannot make itself a
new certificate, or revoke its member's other devices. The member key stays on the device it
was made on (and in its backups); see ``docs/spaces.md``, *A member's devices*.

The fold's rules for both records are rules 12 and 13 of :mod:`meshcrew.spaces.fold`.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from meshcrew.errors import SpaceError
from meshcrew.records import KEY_BYTES
from meshcrew.spaces.bodies import DeviceBody, Draft, UnlinkBody, draft
from meshcrew.spaces.state import SpaceState

DEVICE_DOMAIN = b"meshcrew/device/v1\x00"
"""What a member key signs, before ``member || device``, to certify a device."""
UNLINK_DOMAIN = b"meshcrew/unlink/v1\x00"
"""What a member key signs, before ``member || device``, to revoke a device."""


def certify_device(member: SigningKey, device: bytes) -> bytes:
    """The member key's certificate of ``device`` (a 64-byte signature)."""
    if len(device) != KEY_BYTES:
        raise ValueError("a device is named by its 32-byte public key")
    me = bytes(member.verify_key)
    if device == me:
        raise SpaceError("The member key is its member's first device already.")
    return member.sign(DEVICE_DOMAIN + me + device).signature


def revoke_device(member: SigningKey, device: bytes) -> bytes:
    """The member key's revocation of ``device`` (a 64-byte signature)."""
    me = bytes(member.verify_key)
    return member.sign(UNLINK_DOMAIN + me + device).signature


def _verifies(member: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(member).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def verify_certificate(member: bytes, device: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``member``'s certificate of ``device``."""
    return _verifies(member, DEVICE_DOMAIN + member + device, signature)


def verify_revocation(member: bytes, device: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``member``'s revocation of ``device``."""
    return _verifies(member, UNLINK_DOMAIN + member + device, signature)


def member_let_in(state: SpaceState, member: bytes) -> bool:
    """Whether ``member`` is a current member of the space who has been let in (an epoch was
    sealed to them): what a device of theirs needs before it can post its certificate there."""
    return (member in state.active and member not in state.pending
            and any(member in e.shares for e in state.epochs.values()))


def device_certificate(state: SpaceState, member: bytes, signature: bytes) -> Draft:
    """The ``device`` record a device signs as its first record in a space
    (``seq=1, prev=None``), carrying its member's certificate.

    It names the newest epoch sealed to the member, so every replica orders it after the
    member was let in.

    Raises:
        SpaceError: if ``member`` is not a current member let in, in ``state``.
    """
    if not member_let_in(state, member):
        raise SpaceError("Your member key is not a current member of this space (let in).")
    theirs = [e for e in state.epochs.values() if member in e.shares]
    newest = min(theirs, key=lambda e: (-e.number, e.id))
    return draft(DeviceBody(member, signature, newest.id))


def unlink_device(state: SpaceState, author: bytes, device: bytes, signature: bytes) -> Draft:
    """The ``unlink`` record revoking ``device`` in this space, posted by ``author`` (the
    member key or another current device of the same member).

    It names the device's last record that still counts (the newest ``state`` holds): its
    later records are refused, on every replica.

    Raises:
        SpaceError: if ``author`` is not a current device of a current member, ``device`` is
            not a current device of that member, or it is ``author`` itself.
    """
    member = state.member_of(author)
    if member is None or not state.is_member(author):
        raise SpaceError("You are not a member of this space.")
    known = state.devices.get(device)
    if known is None or known.member != member:
        raise SpaceError("That key is not a device of yours in this space.")
    if known.revoked_by is not None:
        raise SpaceError("That device is revoked already.")
    if device == author:
        raise SpaceError("A device cannot revoke itself; revoke it from another device.")
    if not verify_revocation(member, device, signature):
        raise SpaceError("The revocation is not signed by your member key.")
    last = state.last_counting_record(device)
    if last is None:  # pragma: no cover - a certified device has at least its certificate
        raise SpaceError("That device has no accepted record to name.")
    return draft(UnlinkBody(member, device, signature, last.seq, last.id))
