"""Errors of the signalling layer.

SignallingError                 (server.errors.NexusError)
├── ProtocolError               400: a message that is malformed, too big or unexpected
├── SdpError                    400: an offer we cannot accept, with the reason
└── NotInRoom                   409: an action that needs a joined participant
"""

from __future__ import annotations

from server.errors import BadRequest, Conflict


class SignallingError(Exception):
    """Marker base for the errors below (each is also a `NexusError` with its status)."""


class ProtocolError(SignallingError, BadRequest):
    code = "protocol_error"


class SdpError(SignallingError, BadRequest):
    code = "bad_sdp"


class NotInRoom(SignallingError, Conflict):
    code = "not_in_room"
