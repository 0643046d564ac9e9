"""The log as `nexus-interview --log-level DEBUG` sets it up, into a test's handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from common.logs import QUIET_LIBRARIES, configure_logging


@contextmanager
def logging_at_debug(handler: logging.Handler) -> Iterator[None]:
    """Everything the server logs at DEBUG reaches ``handler``; the root logger and the
    libraries' levels are as they were afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    root.addHandler(handler)
    configure_logging("DEBUG")
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
        for name, saved in libraries.items():
            logging.getLogger(name).setLevel(saved)
