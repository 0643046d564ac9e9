"""What may reach the log: the process's logging set-up, and an access log that writes
neither the applicant's invitation token nor any query string.

A log is read by more people, and kept longer, than the database: a secret written there
undoes whatever the store does to protect it (only the SHA-256 of an invitation token is
stored; passwords only as argon2 hashes).
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

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

# Path prefixes whose remainder is a credential: the applicant's invitation link is the
# only key to their interview.
SECRET_PATH_PREFIXES = ("/i/",)
REDACTED = "<redacted>"


def configure_logging(level: str) -> None:
    """Root at ``level`` (a handler on stderr unless one is there), quiet libraries at
    WARNING or above."""
    logging.basicConfig(format=FORMAT)
    chosen = logging.getLevelNamesMapping()[level]
    logging.getLogger().setLevel(chosen)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(chosen, logging.WARNING))


def loggable_path(request: BaseRequest) -> str:
    """The path as sent, without its query string, with any invitation token hidden.

    Checked on the decoded path too: ``/%69/<token>`` reaches the invitation page."""
    raw = request.rel_url.raw_path
    for prefix in SECRET_PATH_PREFIXES:
        head, found, _ = raw.partition(prefix)
        if found:
            return f"{head}{prefix}{REDACTED}"
        if prefix in request.path:
            return REDACTED
    return raw


class AccessLog(AbstractAccessLogger):
    """One line a request: client, method, path (see `loggable_path`), status, size and
    time. No headers: a Referer or a cookie may carry what the path does not."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %dB %.3fs',
            request.remote or "-",
            request.method,
            loggable_path(request),
            response.status,
            response.body_length,
            time,
        )
