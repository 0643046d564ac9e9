"""The processes' logging set-up (the interview server's and its media workers'): a log
is read by more people, and kept longer, than the database, so libraries that write
secrets below WARNING are held there whatever the chosen level."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"

# Library loggers held at WARNING whatever the chosen level: what they write below it
# carries secrets.
QUIET_LIBRARIES = (
    # Every statement with its parameters: argon2 hashes, TOTP secrets, decision notes.
    "aiosqlite",
    # Every session description, ICE password included.
    "aiortc",
    # Every STUN message, with its username and integrity check.
    "aioice",
)


def configure_logging(level: str) -> None:
    """Root at ``level`` (a handler on stderr unless one is there), quiet libraries at
    WARNING or above."""
    logging.basicConfig(format=FORMAT)
    chosen = logging.getLevelNamesMapping()[level]
    logging.getLogger().setLevel(chosen)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(chosen, logging.WARNING))
