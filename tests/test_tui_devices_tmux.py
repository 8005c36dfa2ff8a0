"""Linking a device from the app, in a real terminal (tmux): a new laptop's app, on its first
screen, chooses "This is another device of mine" and shows a link code; Ana approves it with
``meshcrew devices add CODE`` beside her running node (the code read off the app's screen, the
fingerprints compared both ways); the new laptop's app then lists Ana's crew, and its Devices
screen shows both laptops.

Waits poll the screen or a node with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

import pytest

from meshcrew import identity
from node_processes import Fleet, crew_in_process, fleet
from test_demo import MESHCREW, Tmux

__all__ = ["fleet"]  # the fixture

CODE_LINE = re.compile(r"│ ([a-z0-9-]+) +│")
FINGERPRINT = re.compile(r"This laptop's fingerprint is +([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})")


def code_on(screen: str) -> str:
    """The link code as the app shows it: the lines of its box, joined."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if "mcl1-" in line)
    parts = []
    for line in lines[start:]:
        found = CODE_LINE.search(line)
        if found is None:
            break
        parts.append(found.group(1))
    return "".join(parts)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_new_laptop_is_linked_from_the_app_and_lists_the_crew(fleet: Fleet) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install test installs it)")
    ana, bo, laptop = fleet.make("Ana", "Bo", "Laptop")
    laptop.home.key_file.unlink()  # a fresh home: the app's first screen
    crew_in_process(ana, bo, name="Riverside crew")
    ana.start()
    tmux = Tmux(f"meshcrew-link-test-{os.getpid()}")
    done_marker = "APP-EXITED-"
    try:
        app = shlex.join([MESHCREW, "--home", str(laptop.home.path)])
        tmux.start(["sh", "-c", f"{app}; echo {done_marker}$?; sleep 60"])
        tmux.wait_until(lambda s: "This is another device of mine" in s, within=30,
                        what="the first-run screen")
        tmux.keys("Tab", "Tab", "Tab", "Enter")  # past the name, create and restore
        screen = tmux.wait_until(lambda s: "mcl1-" in s and "Waiting for your other laptop"
                                 in s, within=45, what="the link code")
        code = code_on(screen)
        shown = FINGERPRINT.search(screen)
        assert shown is not None, screen
        device = identity.load(laptop.home.key_file)
        assert shown.group(1) == device.fingerprint
        added = ana.run("devices", "add", code)
        # Ana's side names the same laptop the new one shows.
        assert device.fingerprint in added.stdout
        screen = tmux.wait_until(lambda s: "Linked to Ana." in s, within=45,
                                 what="the new laptop linked")
        assert identity.fingerprint(ana.key) in screen  # the member fingerprint to compare
        tmux.keys("Enter")  # Continue
        screen = tmux.wait_until(lambda s: "Riverside crew" in s and "n New space" in s,
                                 within=45, what="the crew listed, with its keys, on the new "
                                 "laptop")
        # The title speaks of the member's fingerprint, then this laptop's.
        assert f"{identity.fingerprint(ana.key)} · this laptop {device.fingerprint}" in screen
        tmux.keys("d")
        screen = tmux.wait_until(lambda s: "member key" in s and "this laptop" in s,
                                 within=10, what="both laptops on the Devices screen")
        assert "This laptop is a linked device" in screen
        assert identity.fingerprint(ana.key) in screen
        tmux.keys("Escape")
        tmux.wait_until(lambda s: "n New space" in s, within=10, what="the home screen")
        tmux.keys("q")  # on its own: after an Escape in one go it would read as alt+q
        screen = tmux.wait_until(lambda s: done_marker in s, within=20, what="the app to exit")
        assert f"{done_marker}0" in screen
    finally:
        tmux.kill()
    assert identity.load(laptop.home.key_file).name == "Ana"
    listed = {d["fingerprint"]: d for d in ana.cli("devices")["devices"]}
    assert not listed[device.fingerprint]["revoked"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_laptop_is_linked_from_app_to_app(fleet: Fleet) -> None:
    """Both sides in the app: Ana's app (its own node) pastes the code the new laptop's app
    shows, compares the fingerprint, and links it."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install test installs it)")
    ana, bo, laptop = fleet.make("Ana", "Bo", "Laptop")
    laptop.home.key_file.unlink()
    crew_in_process(ana, bo, name="Riverside crew")
    new = Tmux(f"meshcrew-link-new-{os.getpid()}")
    first = Tmux(f"meshcrew-link-first-{os.getpid()}")
    try:
        new.start(["sh", "-c", shlex.join([MESHCREW, "--home", str(laptop.home.path)])])
        first.start(["sh", "-c", shlex.join([MESHCREW, "--home", str(ana.home.path)])])
        new.wait_until(lambda s: "This is another device of mine" in s, within=30,
                       what="the new laptop's first-run screen")
        new.keys("Tab", "Tab", "Tab", "Enter")
        screen = new.wait_until(lambda s: "mcl1-" in s and "Waiting for your other laptop"
                                in s, within=45, what="the link code")
        code = code_on(screen)
        device = identity.load(laptop.home.key_file)
        first.wait_until(lambda s: "Riverside crew" in s and "d Devices" in s, within=30,
                         what="Ana's home screen")
        first.keys("d")
        first.wait_until(lambda s: "This laptop holds your member key" in s, within=10,
                         what="Ana's devices")
        first.keys("a")
        first.wait_until(lambda s: "Link a new laptop of yours" in s, within=10,
                         what="the link dialog")
        first.keys(code, literal=True)
        first.wait_until(lambda s: f"The new laptop's fingerprint:  {device.fingerprint}" in s,
                         within=10, what="the new laptop's fingerprint, to compare")
        first.keys("C-s")  # Link it (enter in the code's box is a line break)
        first.wait_until(lambda s: device.fingerprint in s and "another laptop" in s,
                         within=45, what="the new laptop in Ana's devices")
        screen = new.wait_until(lambda s: "Linked to Ana." in s, within=45,
                                what="the new laptop linked")
        assert identity.fingerprint(ana.key) in screen
        new.keys("Enter")
        new.wait_until(lambda s: "Riverside crew" in s and "n New space" in s, within=45,
                       what="the crew on the new laptop")
    finally:
        new.kill()
        first.kill()
    assert identity.load(laptop.home.key_file).name == "Ana"
