"""The processes' logging set-up (the interview server's and its media workers'): a log
is read by more people, and kept longer, than the database, so libraries that write
secrets below WARNING are held there whatever the chosen level.

Lines are text, or JSON (one object a line, for a log collector) carrying the request's
and the interview's ids when the code that logs runs for one: `REQUEST_ID` and
`INTERVIEW_ID` are context variables, set by the request middleware and by the code that
works on an interview, so every line logged beneath them carries them without being
passed them. A JSON line holds the same message as a text line would: what keeps a
secret out of one (the access log's redaction, `Secret`'s repr) keeps it out of both.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

FORMAT = "%(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

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

# Context variables are per task by design (each request and each interview's work sees
# its own), which is what a log line's ids need; nothing else is kept here.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
INTERVIEW_ID: ContextVar[str | None] = ContextVar("interview_id", default=None)


@contextlib.contextmanager
def interview_context(interview_id: str | None) -> Iterator[None]:
    """Lines logged inside carry ``interview_id`` (none if None)."""
    token = INTERVIEW_ID.set(interview_id)
    try:
        yield
    finally:
        INTERVIEW_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the
    request's and interview's ids when known, and a traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in (("request_id", REQUEST_ID), ("interview_id", INTERVIEW_ID)):
            value = variable.get()
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, form: str = "text") -> None:
    """Root at ``level`` (a handler on stderr unless one is there), lines as ``form``
    (text or json), quiet libraries at WARNING or above."""
    logging.basicConfig(format=FORMAT)
    root = logging.getLogger()
    if form == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
    chosen = logging.getLevelNamesMapping()[level]
    root.setLevel(chosen)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(chosen, logging.WARNING))
