"""Errors of the recordings package.

RecordingError              (common.errors.NexusError)
├── KeyFileError            400: a key file or key string that cannot be used
└── AgeError                400: a file that is not a valid age file for these keys
    ├── NoMatchingIdentity      none of the identities opens the file
    └── TruncatedFile           the file ends before its last chunk (a crash)
"""

from __future__ import annotations

from common.errors import BadRequest, NexusError


class RecordingError(NexusError):
    pass


class KeyFileError(RecordingError, BadRequest):
    pass


class AgeError(RecordingError, BadRequest):
    code = "bad_age_file"


class NoMatchingIdentity(AgeError):
    pass


class TruncatedFile(AgeError):
    def __init__(self, message: str, complete_chunks: int) -> None:
        super().__init__(message)
        self.complete_chunks = complete_chunks
