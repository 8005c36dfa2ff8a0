"""The pure layers import no I/O framework: no trio, libp2p, sqlite3 or textual.

Each module is imported in a fresh interpreter, so one module's imports cannot hide another's.
Layers that do not exist yet are left out; a layer that is a package is checked module by module.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys

import pytest

PURE_LAYERS = (
    "meshcrew.errors",
    "meshcrew.reasons",
    "meshcrew.home",
    "meshcrew.records",
    "meshcrew.identity",
    "meshcrew.spaces",
    "meshcrew.crypto",
    "meshcrew.sync",
)
FORBIDDEN = frozenset({"trio", "libp2p", "sqlite3", "_sqlite3", "textual"})
"""Top-level names of modules that only the shell (store, net, node, tui, cli) may import."""

_LIST_MODULES = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
                 "print(*sorted(sys.modules))")


def pure_modules() -> list[str]:
    """Every existing module of the pure layers, packages expanded to their submodules."""
    found: list[str] = []
    for layer in PURE_LAYERS:
        spec = importlib.util.find_spec(layer)
        if spec is None:
            continue
        found.append(layer)
        if spec.submodule_search_locations is not None:
            found += [info.name for info in
                      pkgutil.walk_packages(spec.submodule_search_locations, prefix=f"{layer}.")]
    return found


def test_the_contract_covers_the_layers_that_exist_today() -> None:
    assert {"meshcrew.records", "meshcrew.identity", "meshcrew.reasons", "meshcrew.errors",
            "meshcrew.home"} <= set(pure_modules())


@pytest.mark.parametrize("module", pure_modules())
def test_pure_module_imports_no_io_framework(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", _LIST_MODULES, module], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = {name.partition(".")[0] for name in done.stdout.split()}
    assert module in done.stdout.split()
    assert not loaded & FORBIDDEN, f"{module} pulls in {sorted(loaded & FORBIDDEN)}"


def test_a_cli_command_imports_no_network_stack() -> None:
    """Every CLI command is a new Python process: one that reads the replica, or talks to a
    running node over its control socket, must not import libp2p or trio (about half a second
    each; the chaos run's polling CLIs took four times as long when a reply type came from a
    module that imports the network)."""
    script = ("import sys; import meshcrew.cli.app, meshcrew.cli.node_link; "
              "from meshcrew.node.control_client import control_types; control_types(); "
              "print(*sorted(sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = {name.partition(".")[0] for name in done.stdout.split()}
    assert "meshcrew" in loaded
    assert not loaded & {"libp2p", "trio", "textual"}, sorted(loaded & {"libp2p", "trio"})
