"""Where a node's log goes: ``node.log`` in the home folder, for ``meshcrew node``, the node a
command runs for itself (a join, a device link) and the node inside the app."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from meshcrew.errors import HomeError
from meshcrew.home import Home


@contextmanager
def logging_to_home(home: Home) -> Iterator[None]:
    """Send the node's log to ``node.log`` (mode 0600) in the home folder while the block runs
    (the loggers' levels are put back after, for a caller that goes on, such as a test).

    py-libp2p's logger does not propagate (libp2p.utils.logging), so it gets the handler too:
    else its warnings went to stderr through Python's last-resort handler.

    Raises:
        HomeError: the log file cannot be written.
    """
    path = home.log_file
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        back = f" {home.must_be_yours()}" if home.not_mine() else ""
        raise HomeError(f"Cannot write the node's log {path}: {exc.strerror}.{back}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # libp2p's warnings, not its chatter (its auto-connector sets INFO on its own logger)
    handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("libp2p"))
    root = logging.getLogger()
    levels = {root: logging.INFO, **{logging.getLogger(noisy): logging.WARNING for noisy in (
        "libp2p", "multiaddr", "zeroconf", "async_service")}}
    before = {logger: logger.level for logger in levels}
    for logger, level in levels.items():
        logger.setLevel(level)
    loggers = [root, logging.getLogger("libp2p")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        for logger, level in before.items():
            logger.setLevel(level)
        handler.close()
