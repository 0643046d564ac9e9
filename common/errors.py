"""Errors that reach a person carry a clear message and the HTTP status to answer with.

NexusError                      status 500, the base: never raised itself
├── BadRequest                  400: malformed input (JSON, fields, types)
│   └── ImportRejected          400: an import file with bad rows; lists every one
├── Unauthorized                401: sign-in needed or failed
├── Forbidden                   403: signed in, but not allowed
│   └── CsrfRejected            403: missing or wrong CSRF token
├── NotFound                    404
├── Conflict                    409: the request clashes with stored state
├── Gone                        410: an invitation whose window has closed
├── PayloadTooLarge             413
├── Locked                      423: too many wrong tries on an account or link
├── TooManyRequests             429
└── SettingError                (CLI only) a setting with a bad value
"""

from __future__ import annotations

from collections.abc import Sequence


class NexusError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **fields: object) -> None:
        """``message`` may name ``{fields}``: it is translated first, then filled."""
        self.template = message
        self.fields = fields
        self.message = message.format(**fields) if fields else message
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers that belong with this error."""
        return {}


class BadRequest(NexusError):
    status = 400
    code = "bad_request"


class ImportRejected(BadRequest):
    code = "import_rejected"

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  line {line}: {reason}" for line, reason in self.problems)
        super().__init__(f"nothing was imported: {len(self.problems)} bad row(s)\n{lines}")


class Unauthorized(NexusError):
    status = 401
    code = "unauthorized"


class Forbidden(NexusError):
    status = 403
    code = "forbidden"


class CsrfRejected(Forbidden):
    code = "csrf_rejected"


class NotFound(NexusError):
    status = 404
    code = "not_found"


class Conflict(NexusError):
    status = 409
    code = "conflict"


class Gone(NexusError):
    status = 410
    code = "gone"


class PayloadTooLarge(NexusError):
    status = 413
    code = "payload_too_large"


class Locked(NexusError):
    status = 423
    code = "locked"


class TooManyRequests(NexusError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SettingError(NexusError):
    status = 400
    code = "bad_setting"
