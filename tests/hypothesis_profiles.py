"""Hypothesis profiles, and how many examples a property test runs under each.

``dev`` (the default on a developer's machine) runs each property's own ``max_examples``;
``ci`` (chosen when ``CI`` is set, as ``.ci/run`` is run) runs more, without an example
database, so CI does not depend on examples a database replays; ``thorough`` runs ten times as
many for a search by hand (``HYPOTHESIS_PROFILE=thorough scripts/test tests/test_spaces_*.py``);
``mutants`` (chosen by ``scripts/mutants``) runs a quarter, the same examples for every mutant
(derandomized, no database), since each mutant runs a module's properties again.

A test's own ``@settings(max_examples=...)`` overrides any profile's, so property tests write
``max_examples=examples(n)``: ``n`` scaled by the profile's factor. The examples that matter
(each found a broken rule once) are pinned with ``@example`` and run under every profile; a
deterministic test beside each security property checks the rule without luck.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FACTORS = {"dev": 1.0, "ci": 2.0, "thorough": 10.0, "mutants": 0.25}
"""Examples per profile, as a multiple of each test's own count."""


def chosen_profile() -> str:
    """``HYPOTHESIS_PROFILE`` if set, else ``ci`` under CI, else ``dev``."""
    named = os.environ.get("HYPOTHESIS_PROFILE")
    if named:
        if named not in FACTORS:
            raise ValueError(f"HYPOTHESIS_PROFILE={named!r}: choose one of {sorted(FACTORS)}")
        return named
    return "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev"


def examples(n: int, *, more: bool = True) -> int:
    """``n`` examples scaled by the chosen profile (at least 1); with ``more=False``, a profile
    may run fewer but never more (a property whose count the suite's time budget fixes)."""
    factor = FACTORS[chosen_profile()]
    return max(1, round(n * (factor if more else min(factor, 1.0))))


def register_profiles() -> None:
    """Register the three profiles and load the chosen one (from ``tests/conftest.py``)."""
    slow = [HealthCheck.too_slow]
    settings.register_profile("dev", deadline=None)
    settings.register_profile("ci", deadline=None, database=None, print_blob=True,
                              max_examples=examples(100), suppress_health_check=slow)
    settings.register_profile("thorough", deadline=None, print_blob=True,
                              max_examples=examples(100), suppress_health_check=slow)
    settings.register_profile("mutants", deadline=None, database=None, derandomize=True,
                              max_examples=examples(100), suppress_health_check=slow)
    settings.load_profile(chosen_profile())
