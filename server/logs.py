"""What may reach the log from the web: an access log that writes
neither the applicant's invitation token nor any query string.

A log is read by more people, and kept longer, than the database: a secret written there
undoes whatever the store does to protect it (only the SHA-256 of an invitation token is
stored; passwords only as argon2 hashes).
"""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, RequestKey, StreamResponse

from common.logs import INTERVIEW_ID, REQUEST_ID

from .client_address import client_address

# Path prefixes whose remainder is a credential: the applicant's invitation token, the only
# key to their interview, in their link and in the device check's request for relays.
SECRET_PATH_PREFIXES = ("/i/", "/api/invitations/")
REDACTED = "<redacted>"
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = RequestKey("request_id", str)
INTERVIEW_ID_KEY: RequestKey[str | None] = RequestKey("interview_id")
# A caller's request id is kept only if it looks like one a proxy makes (a UUID, nginx's
# 32 hex digits): an id is logged, and whatever else a client sends there (a token, a
# line break) must not be.
SAFE_REQUEST_ID = re.compile(r"[0-9A-Fa-f-]{8,36}")


INTERVIEW_ID_FORM = re.compile(r"iv_[0-9a-f]{16}")
"""An interview's id as the store makes them: anything else in its place is not logged."""


def loggable_interview_id(named: str | None) -> str | None:
    """``named`` if it has the form of an interview's id (whoever sent it: an address, a
    signalling message), else None."""
    return named if named is not None and INTERVIEW_ID_FORM.fullmatch(named) else None


def request_id(sent: str | None) -> str:
    """``sent`` if it is a safe request id, else a new one."""
    if sent is not None and SAFE_REQUEST_ID.fullmatch(sent):
        return sent
    return secrets.token_hex(16)


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
        # Written after the handler's context is gone: its ids are set again here.
        token = REQUEST_ID.set(request.get(REQUEST_ID_KEY))
        interview = INTERVIEW_ID.set(request.get(INTERVIEW_ID_KEY))
        try:
            self.logger.info(
                '%s "%s %s" %d %dB %.3fs',
                client_address(request),
                request.method,
                loggable_path(request),
                response.status,
                response.body_length,
                time,
            )
        finally:
            INTERVIEW_ID.reset(interview)
            REQUEST_ID.reset(token)
