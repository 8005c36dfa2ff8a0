"""Where libp2p's exceptions become meshcrew's: nothing above ``net`` sees a libp2p or trio error.

Translation is by kind of failure, not by libp2p class alone, because the same libp2p exception
means "could not reach" while dialling and "lost" once connected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import trio
from libp2p.exceptions import BaseLibp2pError
from libp2p.io.exceptions import IOException
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError

from meshcrew.errors import (
    ConnectionLost,
    DialError,
    MeshcrewError,
    NetError,
    PeerTimeout,
)

log = logging.getLogger("meshcrew.net")


@contextmanager
def translated(doing: str, *, dialling: bool = False) -> Iterator[None]:
    """Re-raise any libp2p, trio-timeout or OS error in the block as a :class:`NetError`.

    Args:
        doing: what was being done, for the message ("opening a sync stream to 12D3…").
        dialling: failures before a connection exists are :class:`DialError`, not
            :class:`ConnectionLost`.

    meshcrew errors and cancellation pass through unchanged.
    """
    try:
        yield
    except MeshcrewError:
        raise
    except trio.TooSlowError:
        raise PeerTimeout(f"Gave up {doing}: the peer did not answer in time.") from None
    except (IOException, MuxedStreamError, MuxedConnError, trio.BrokenResourceError,
            trio.ClosedResourceError) as exc:
        lost: type[NetError] = DialError if dialling else ConnectionLost
        raise lost(f"Failed {doing}: the connection closed ({type(exc).__name__}).") from None
    except (BaseLibp2pError, OSError) as exc:
        failed: type[NetError] = DialError if dialling else NetError
        log.debug("libp2p error %s", doing, exc_info=True)
        raise failed(f"Failed {doing}: {type(exc).__name__}: {exc}".rstrip(": ")) from None


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a task group should surface: the first that is not a cancellation."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return leaves[0]


class OneLineStreamFailures(logging.Filter):
    """py-libp2p logs every refused stream as a seven-line ERROR ("Failed to open stream to peer
    ..."), though the caller gets the error and decides what it means (a peer that does not
    speak a protocol is normal): keep its first two lines, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(
                "Failed to open stream to peer"):
            record.msg = " ".join(str(record.msg).split("\n")[:2])
            record.args = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class ExpectedDialFailures(logging.Filter):
    """py-libp2p logs at ERROR every outbound dial that finds nothing listening ("Failed to open
    TCP stream": a few a minute for each offline peer the node redials with backoff) and, on the
    asker, every AutoNAT dial-back ("fail to upgrade mux": see :mod:`meshcrew.net.dial_back`).
    The node expects both and handles them (the dialer logs its own failures): keep them at
    DEBUG."""

    EXPECTED = ("Failed to open TCP stream", "fail to upgrade mux for peer")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(self.EXPECTED):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_STREAM_FAILURES = OneLineStreamFailures()
_DIAL_FAILURES = ExpectedDialFailures()
_QUIETED = {"libp2p.host.basic_host": _STREAM_FAILURES,
            "libp2p.transport.tcp.tcp": _DIAL_FAILURES, "libp2p.network.swarm": _DIAL_FAILURES}


def quiet_stream_failures() -> None:
    """Install :class:`OneLineStreamFailures` on py-libp2p's host logger and
    :class:`ExpectedDialFailures` on its TCP transport's and swarm's (once)."""
    for name, quiet in _QUIETED.items():
        logger = logging.getLogger(name)
        if quiet not in logger.filters:
            logger.addFilter(quiet)
