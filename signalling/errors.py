"""Errors of the signalling layer.

SignallingError                 (common.errors.NexusError)
├── ProtocolError               400: a message that is malformed, too big or unexpected
├── NotInRoom                   409: an action that needs a joined participant
└── LimitReached                429: more of something than one honest client ever needs
    └── TooManySockets          429: another socket for a sign-in that has its fill open
"""

from __future__ import annotations

from common.errors import BadRequest, Conflict, NexusError


class SignallingError(Exception):
    """Marker base for the errors below (each is also a `NexusError` with its status)."""


class ProtocolError(SignallingError, BadRequest):
    code = "protocol_error"


class NotInRoom(SignallingError, Conflict):
    code = "not_in_room"


class LimitReached(SignallingError, NexusError):
    status = 429
    code = "limit_reached"


class TooManySockets(LimitReached):
    code = "too_many_sockets"
