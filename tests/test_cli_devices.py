"""``meshcrew devices`` on a linked laptop: it lists the member's devices, and ``devices
revoke`` / ``devices add`` say which laptop can do them (the one with the member key), in one
line, status 1; on the laptop with the member key, ``devices revoke`` of that key itself, of a
device revoked already or of nothing says so. Real home folders, the real CLI in a
subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from meshcrew import identity
from test_service_support import Town, crew_of, send, sync


def meshcrew(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    return subprocess.run([sys.executable, "-m", "meshcrew", "--home", str(home), *args],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_linked_laptop_is_told_which_laptop_can_revoke(tmp_path: Path) -> None:
    town = Town(tmp_path)
    try:
        space, (ana, bo) = crew_of(town, "Ana", "Bo")
        laptop, tablet = town.person("Laptop"), town.person("Tablet")
        for device in (laptop, tablet):
            send(ana, device, space)
            device.adopt_certificate(ana.me, ana.certify_device(device.me))
            send(device, ana, space)
        sync(space, ana, bo, laptop, tablet)
        identity.save(laptop.identity, laptop.replica.home.key_file)
        home = laptop.replica.home.path
    finally:
        town.close()  # the CLI takes the writer lock
    listed = json.loads(meshcrew(home, "devices", "--json").stdout)["devices"]
    assert [d["first"] for d in listed] == [True, False, False]
    tablet_fpr = identity.fingerprint(tablet.me)
    done = meshcrew(home, "devices", "revoke", tablet_fpr)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "Only the laptop with your member key can revoke a device: Ana's first laptop" \
        in line
    assert ana.identity.fingerprint in line


def refused(home: Path, *args: str) -> str:
    done = meshcrew(home, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    return line


def test_the_member_keys_laptop_is_told_what_it_cannot_revoke(tmp_path: Path) -> None:
    """Revoking the member key itself said "names no linked device", as for a typo."""
    town = Town(tmp_path)
    try:
        space, (ana,) = crew_of(town, "Ana")
        tablet = town.person("Tablet")
        send(ana, tablet, space)
        tablet.adopt_certificate(ana.me, ana.certify_device(tablet.me))
        send(tablet, ana, space)
        identity.save(ana.identity, ana.replica.home.key_file)
        home = ana.replica.home.path
    finally:
        town.close()  # the CLI takes the writer lock
    line = refused(home, "devices", "revoke", ana.identity.fingerprint)
    assert line == (f"meshcrew: error: {ana.identity.fingerprint} is your member key, on the "
                    "laptop where meshcrew init made your identity: it cannot be revoked. "
                    "Revoke a linked laptop (meshcrew devices lists them).")
    assert "Name the device to revoke" in refused(home, "devices", "revoke", " ")
    assert "names none of your devices" in refused(home, "devices", "revoke", "laptop#1")
    tablet_fpr = identity.fingerprint(tablet.me)
    done = meshcrew(home, "devices", "revoke", tablet_fpr)
    assert done.returncode == 0, done.stderr
    assert refused(home, "devices", "revoke", tablet_fpr) == (
        f"meshcrew: error: {tablet_fpr} is revoked already.")
