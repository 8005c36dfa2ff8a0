"""Tests that need Linux network namespaces (the mDNS test, the NAT lab).

Where a machine cannot make namespaces (no root, no ``ip``) such a test skips with the reason.
CI runs as root with the tools installed (``scripts/install test``), so there a skip would only
hide a broken set-up behind a green run: ``.ci/run`` sets ``MESHCREW_REQUIRE_NAMESPACES=1`` and
every such test then fails instead of skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRED = "MESHCREW_REQUIRE_NAMESPACES"


def skip_unless_namespaces(missing: str | None) -> None:
    """Skip the test (or fail it, where namespaces are required) if ``missing`` says why they
    cannot be made here; do nothing if it is None."""
    if missing is None:
        return
    if os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{missing} ({REQUIRED}=1: this run must exercise network namespaces)")
    pytest.skip(missing)
