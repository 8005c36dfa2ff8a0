"""Writing a file that no one else may read and no one may see half written (the key file, a
backup, a file of records): one way, used by every writer of such a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path``, mode 0600, whole or not at all.

    The data goes into a new file beside ``path`` (a fresh name, never a file already there),
    is flushed to disk, and is then renamed over ``path`` (``overwrite``) or linked to it,
    which never replaces a file already there. The folder is flushed too, so the new name
    survives a crash.

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` exists (it is left as it was).
        OSError: it could not be written (``path`` is left as it was, the file beside it is
            removed).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename is only durable once the folder's entry is on disk too.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
