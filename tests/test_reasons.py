"""The reasons for refusing a record: each has a sentence, and each is named by another test.

The tests that produce a reason live with the layer that refuses (records, store, spaces). The
second test here is only a textual guard: a reason added to ``meshcrew.reasons`` that no test
mentions fails it. It cannot tell a test that produces the reason from one that only names it.
"""

from __future__ import annotations

import re
from pathlib import Path

from meshcrew.reasons import _SENTENCES, Reason

TESTS = Path(__file__).resolve().parent


def test_every_reason_has_its_own_sentence() -> None:
    assert set(_SENTENCES) == {reason.value for reason in Reason}
    for reason in Reason:
        assert reason.sentence.endswith(".")
        assert reason.sentence != reason.value.replace("_", " ")


def test_every_reason_is_named_by_a_test_outside_this_file() -> None:
    named: set[str] = set()
    for path in TESTS.glob("test_*.py"):
        if path.name != Path(__file__).name:
            named |= set(re.findall(r"Reason\.([A-Z_]+)\b", path.read_text(encoding="utf-8")))
    missing = sorted(reason.name for reason in Reason if reason.name not in named)
    assert not missing, f"no test produces {missing}"
