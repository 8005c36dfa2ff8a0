"""Files of exported records: for offline joins, carrying records by hand, and backups.

Layout: the 18-byte header ``MAGIC`` (``b"meshcrew-records\\x00"`` and a version byte, 1), then
each record as a 4-byte big-endian length followed by the record's encoded bytes exactly as
signed. Nothing else: records carry their own signatures, and an import verifies each one
through the replica, so a file from anywhere can be imported safely (what does not verify is
refused and logged). Crew content inside stays encrypted as it is in the records.

A file is written beside its final name, flushed and renamed, so a crash leaves the old file or
the complete new one, never half of one. It is created with mode 0600: the records of a crew
are encrypted, but who is a member and when they wrote is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from meshcrew.errors import TransferFileError
from meshcrew.files import write_private
from meshcrew.records import MAX_RECORD_BYTES

MAGIC = b"meshcrew-records\x00\x01"
LENGTH_BYTES = 4


def write_records(path: Path, raws: Iterable[bytes]) -> int:
    """Write encoded records to ``path`` atomically (replacing any file there).

    Returns:
        How many records were written.

    Raises:
        TransferFileError: if the file cannot be written (nothing is left behind).
    """
    chunks = [MAGIC]
    count = 0
    for raw in raws:
        chunks += [len(raw).to_bytes(LENGTH_BYTES, "big"), raw]
        count += 1
    try:
        write_private(path, b"".join(chunks))
    except OSError as exc:
        raise TransferFileError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return count


def read_records(path: Path) -> list[bytes]:
    """The encoded records in a file made by :func:`write_records` (not yet verified).

    Raises:
        TransferFileError: if the file cannot be read, is not a file of meshcrew records, or is
            damaged or cut short (then nothing is returned, so nothing half gets imported).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TransferFileError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if not data.startswith(MAGIC[:-1]):
        raise TransferFileError(f"{path} is not a file of meshcrew records (make one with: "
                                "meshcrew export SPACE -o FILE).")
    if data[len(MAGIC) - 1 : len(MAGIC)] != MAGIC[-1:]:
        raise TransferFileError(f"{path} was written by a newer meshcrew; upgrade to import it.")
    raws: list[bytes] = []
    at = len(MAGIC)
    while at < len(data):
        length = int.from_bytes(data[at : at + LENGTH_BYTES], "big")
        start, end = at + LENGTH_BYTES, at + LENGTH_BYTES + length
        if start > len(data) or not 0 < length <= MAX_RECORD_BYTES or end > len(data):
            raise TransferFileError(f"{path} is damaged or cut short after {len(raws)} records; "
                                    "nothing was imported. Ask for a fresh export.")
        raws.append(data[start:end])
        at = end
    return raws
