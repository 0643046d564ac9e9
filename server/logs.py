"""What may reach the log from the web: an access log that writes
neither the applicant's invitation token nor any query string.

A log is read by more people, and kept longer, than the database: a secret written there
undoes whatever the store does to protect it (only the SHA-256 of an invitation token is
stored; passwords only as argon2 hashes).
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .client_address import client_address

# Path prefixes whose remainder is a credential: the applicant's invitation token, the only
# key to their interview, in their link and in the device check's request for relays.
SECRET_PATH_PREFIXES = ("/i/", "/api/invitations/")
REDACTED = "<redacted>"


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
            client_address(request),
            request.method,
            loggable_path(request),
            response.status,
            response.body_length,
            time,
        )
