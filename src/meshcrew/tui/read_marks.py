"""Where this member stopped reading each space, for the home screen's unread counts.

The marks are the app's own state, not records: a small JSON file in the home folder
(``tui-read.json``) that only the app reads and writes. A mark is the (signed time, id) of the
newest post seen; posts by others after it are unread.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from meshcrew.service import PostEntry
from meshcrew.tui.cards import HIDDEN_KINDS

FILE_NAME = "tui-read.json"

Mark = tuple[int, bytes]


class ReadMarks:
    """Read marks per space, kept in ``path`` (None: in memory only, e.g. in tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._marks: dict[bytes, Mark] = {}
        if path is not None and path.exists():
            self._marks = _load(path)

    def unread(self, log: Sequence[PostEntry], me: bytes) -> int:
        """How many posts and answers by others in ``log`` (oldest first) are after the mark."""
        if not log:
            return 0
        mark = self._marks.get(log[0].space)
        start = 0 if mark is None else bisect_right(log, mark, key=lambda e: (e.ts, e.id))
        return sum(1 for entry in log[start:]
                   if entry.author != me and entry.kind not in HIDDEN_KINDS)

    def mark_read(self, log: Sequence[PostEntry]) -> None:
        """Everything in ``log`` is read now.

        Raises:
            OSError: if the file cannot be written (the marks in memory are updated anyway).
        """
        if not log:
            return
        newest = log[-1]
        mark = (newest.ts, newest.id)
        if self._marks.get(newest.space) == mark:
            return
        self._marks[newest.space] = mark
        if self.path is not None:
            self._save(self.path)

    def _save(self, path: Path) -> None:
        doc = {space.hex(): [ts, rid.hex()] for space, (ts, rid) in self._marks.items()}
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def _load(path: Path) -> dict[bytes, Mark]:
    """The marks in ``path``; a damaged file counts as no marks (everything shows unread)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {bytes.fromhex(space): (int(ts), bytes.fromhex(rid))
                for space, (ts, rid) in doc.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
