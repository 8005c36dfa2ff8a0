"""write_private: mode 0600 whatever the umask, whole or not at all, and (when asked) never
replacing a file already there. Every writer of a private file (the key file, a backup, a file
of records) goes through it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshcrew.files import write_private


@pytest.fixture
def umask() -> Iterator[None]:
    """A umask that would leave a new file readable by all and writable by no one."""
    old = os.umask(0o222)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("overwrite", [True, False])
def test_the_file_is_private_and_whole_and_nothing_is_left_beside_it(
        tmp_path: Path, overwrite: bool) -> None:
    path = tmp_path / "secret"
    data = os.urandom(300_000)
    write_private(path, data, overwrite=overwrite)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_nlink == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_overwrite_replaces_the_file_there(tmp_path: Path) -> None:
    path = tmp_path / "backup"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_overwrite_a_file_there_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"the first key")
    with pytest.raises(FileExistsError):
        write_private(path, b"another key", overwrite=False)
    assert path.read_bytes() == b"the first key"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_private(tmp_path / "no-such-folder" / "x", b"data")
    target = tmp_path / "a-folder"
    target.mkdir()
    (target / "inside").write_bytes(b"")
    with pytest.raises(OSError, match=r"Is a directory|Directory not empty"):
        write_private(target, b"data")  # a rename cannot replace a folder that holds files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]
