"""Errors of the recordings package.

RecordingError          the base
└── KeyFileError        a key file or key string that cannot be used (400 at the CLI)
"""

from __future__ import annotations

from server.errors import BadRequest, NexusError


class RecordingError(NexusError):
    pass


class KeyFileError(RecordingError, BadRequest):
    pass
