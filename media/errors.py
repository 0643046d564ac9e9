"""Errors of the media plane, each with the words a person can act on.

MediaError                      (common.errors.NexusError)
├── SdpError                    400: an offer or ICE candidate we cannot accept, with the reason
├── RoomClosed                  409: work for a room that has ended
└── TooManyCandidates           429: another ICE candidate for a connection that has its fill

A worker process sends them to the control plane as a `protocol.Refused` (code, status,
message template and its fields), which raises them again there (`refused_error`).
"""

from __future__ import annotations

from common.errors import BadRequest, Conflict, NexusError


class MediaError(NexusError):
    """Marker base for the errors below (each is also a `NexusError` with its status)."""


class SdpError(MediaError, BadRequest):
    code = "bad_sdp"


class RoomClosed(MediaError, Conflict):
    code = "room_closed"


class TooManyCandidates(MediaError):
    status = 429
    code = "too_many_candidates"
