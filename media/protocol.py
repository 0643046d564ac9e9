"""The media-plane protocol, version 1: what the control plane and a media worker say to
each other, as typed messages with pure encode/decode (docs/media-plane.md).

Every message is one MessagePack map ``{"v": 1, "type": …, …}`` in one binary WebSocket
frame (media bytes travel as they are, with no base64). The worker opens the channel;
the control plane speaks first with a `Challenge`, the worker proves it holds the shared
secret in its `Hello` (`proof`), and the control plane answers `Welcome` with what every
room needs (the public recipients, never a private key) or closes the channel.

Requests carry a ``request`` number; the worker answers each with `Answered`, `Done` or
`Refused` for that number, in order with everything else it sends: when the answer to a
`StopRecording` or an `EndRoom` arrives, the room's last media bytes and segment events
have arrived before it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any, Literal

import msgspec

from common.names import Seat

VERSION: Literal[1] = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""A message's limit: the largest is a run of sealed media bytes (`SegmentBytes`)."""
MAX_SDP = 32 * 1024

Version = Literal[1]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SDP)]
RoomRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
FileName = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+-[0-9]{5,}\.webm\.age$")]
Request = Annotated[int, msgspec.Meta(ge=0)]
Detail = dict[str, Any]
RoomEventKind = Literal["join", "drop", "rejoin", "leave", "left", "end"]


class ProtocolError(Exception):
    """A message that is not valid under this protocol (the channel is closed on it)."""


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: Version = VERSION


# --- the handshake ----------------------------------------------------------------------


class Challenge(Message, tag="challenge"):
    """Control plane, first: a fresh random nonce for the worker to sign."""

    nonce: Annotated[str, msgspec.Meta(min_length=32, max_length=128)]


class Hello(Message, tag="hello"):
    """Worker: who it is, and HMAC-SHA256(secret, nonce + name) as proof (`proof`)."""

    worker: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    proof: Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
    cores: Annotated[int, msgspec.Meta(ge=1)] = 1


class Welcome(Message, tag="welcome"):
    """Control plane: the settings every room on the worker follows."""

    recipients: list[str]
    """Public age recipients the media is encrypted to (none: nothing is recorded)."""
    grace_seconds: float
    ice_servers: list[str]
    peer_networks: list[str]
    """Where a participant's connection may send checks (`media.address_policy`)."""
    load_seconds: float
    """How often the worker reports its `Load`."""


# --- control plane to worker -----------------------------------------------------------


class PlaceRoom(Message, tag="place"):
    """Open a room; its segments are numbered on from ``next_segment`` (per seat), so a
    room placed again never overwrites what an earlier placement recorded."""

    room: RoomRef
    record: bool
    next_segment: dict[Seat, int] = msgspec.field(default_factory=dict)


class Relay(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A TURN server the worker's connection may gather relay candidates on, with
    credentials minted for that one connection (the worker never holds the TURN secret)."""

    urls: Annotated[list[Annotated[str, msgspec.Meta(max_length=512)]], msgspec.Meta(max_length=8)]
    username: Annotated[str, msgspec.Meta(max_length=256)]
    credential: Annotated[str, msgspec.Meta(max_length=256)]

    def __repr__(self) -> str:
        # The credential opens a relay: it is for the connection, never for a log.
        return f"Relay(urls={self.urls!r}, username={self.username!r}, credential='***')"


class Offer(Message, tag="offer"):
    """Seat a participant (replacing the seat's previous connection); answered by
    `Answered` with the SDP answer and the new connection's id."""

    request: Request
    room: RoomRef
    seat: Seat
    sdp: Sdp
    info: Detail = msgspec.field(default_factory=dict)
    relays: list[Relay] | msgspec.UnsetType = msgspec.UNSET
    """TURN relays for this connection (`NEXUS_MEDIA_TURN`); unset: host candidates and
    the `Welcome`'s STUN servers only. Unset is left out of the message, so an offer
    without relays is the same bytes a worker that predates them reads."""


class Candidate(Message, tag="candidate"):
    request: Request
    room: RoomRef
    seat: Seat
    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class Leave(Message, tag="leave"):
    request: Request
    room: RoomRef
    seat: Seat


class SocketClosed(Message, tag="socket-closed"):
    """The page that seated ``participant`` closed its socket without leaving."""

    room: RoomRef
    seat: Seat
    participant: str


class StopRecording(Message, tag="stop-recording"):
    """Seal the room's open segments now and record no more of it; `Done` once sealed."""

    request: Request
    room: RoomRef


class EndRoom(Message, tag="end"):
    """Disconnect everyone and close the room (``detail`` goes into its ``end`` event);
    `Done` once its media is sealed."""

    request: Request
    room: RoomRef
    detail: Detail = msgspec.field(default_factory=dict)


class Drain(Message, tag="drain"):
    """Take no new rooms; those on the worker finish."""


# --- worker to control plane -----------------------------------------------------------


class Load(Message, tag="load"):
    """Sent every ``load_seconds``: a worker silent for longer than the control plane's
    limit is taken for dead."""

    rooms: Annotated[int, msgspec.Meta(ge=0)]
    participants: Annotated[int, msgspec.Meta(ge=0)]
    cpu: Annotated[float, msgspec.Meta(ge=0)]
    """CPU-seconds per second the worker process used since its last report."""
    draining: bool = False
    recording_failures: Annotated[int, msgspec.Meta(ge=0)] = 0
    traffic: Traffic | None = None
    """What the worker's rooms have carried since it started (None: a worker that
    predates the counters)."""


class Traffic(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A worker's running totals since it started, read from counters the forwarding
    keeps anyway (never from ``getStats``); each only grows."""

    packets_forwarded: Annotated[int, msgspec.Meta(ge=0)] = 0
    bytes_forwarded: Annotated[int, msgspec.Meta(ge=0)] = 0
    packets_received: Annotated[int, msgspec.Meta(ge=0)] = 0
    packets_lost: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Packets the publishers sent that never arrived (RTP sequence gaps)."""
    nacks: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Retransmissions subscribers asked for (RTCP NACK) and the worker resent."""
    plis: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Keyframe requests (RTCP PLI) the worker sent to publishers."""
    recording_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    rtt_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """The mean round-trip time its connections measured now (None: none measured)."""


class SeatEvent(Message, tag="event"):
    """Something that happened in a room (join, drop, rejoin, leave, left, end)."""

    room: RoomRef
    kind: RoomEventKind
    seat: Seat | None
    at: float
    detail: Detail = msgspec.field(default_factory=dict)


class RoomGone(Message, tag="room-gone"):
    """The room emptied (everyone left or their grace ran out) and closed, its recording
    sealed: a later join places it again."""

    room: RoomRef


class Answered(Message, tag="answered"):
    request: Request
    sdp: Sdp
    participant: str


class Done(Message, tag="done"):
    request: Request


class Refused(Message, tag="refused"):
    """A request the worker could not carry out, said as an error a person can act on:
    ``message`` is the template (translated at the edge), ``fields`` fill it."""

    request: Request
    code: str
    status: int
    message: str
    fields: Detail = msgspec.field(default_factory=dict)


class SegmentBytes(Message, tag="bytes"):
    """Sealed (age-encrypted) bytes of a segment file, at ``offset``: sent as they are
    written, so the control plane's copy is at most moments behind the worker's."""

    room: RoomRef
    file: FileName
    offset: Annotated[int, msgspec.Meta(ge=0)]
    data: bytes


class MediaProgress(Message, tag="media"):
    """How many bytes of an open segment are sealed and their SHA-256 (the record signs
    them, so that after a loss the file's start is still vouched for)."""

    room: RoomRef
    seat: Seat
    file: FileName
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    started_at_ms: int


class SegmentSealed(Message, tag="segment"):
    """A segment is complete: every byte of it has been sent before this."""

    room: RoomRef
    seat: Seat
    file: FileName
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, msgspec.Meta(ge=0)]
    video_frames: int
    audio_frames: int
    duration_ms: int
    started_at_ms: int


class RecordingFailed(Message, tag="recording-failed"):
    """The room's recording stopped (a full disk, a muxer error); the call goes on."""

    room: RoomRef
    seat: Seat | None
    reason: Annotated[str, msgspec.Meta(max_length=500)]


ToWorker = (
    Challenge
    | Welcome
    | PlaceRoom
    | Offer
    | Candidate
    | Leave
    | SocketClosed
    | StopRecording
    | EndRoom
    | Drain
)
ToControl = (
    Hello
    | Load
    | SeatEvent
    | RoomGone
    | Answered
    | Done
    | Refused
    | SegmentBytes
    | MediaProgress
    | SegmentSealed
    | RecordingFailed
)

_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_to_control = msgspec.msgpack.Decoder(ToControl)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode_to_worker(raw: bytes) -> ToWorker:
    """A control plane's message, or `ProtocolError` saying what is wrong with it."""
    message: ToWorker = _decode(_to_worker, raw)
    return message


def decode_to_control(raw: bytes) -> ToControl:
    """A worker's message, or `ProtocolError` saying what is wrong with it."""
    message: ToControl = _decode(_to_control, raw)
    return message


def _decode(decoder: msgspec.msgpack.Decoder[Any], raw: bytes) -> Any:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(raw)} bytes is larger than {MAX_MESSAGE_BYTES}")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a MessagePack message: {exc}") from None


def proof(secret: bytes, nonce: str, worker: str) -> str:
    """What a worker sends to show it holds the shared secret (the secret never travels)."""
    return hmac.new(secret, f"{nonce}\n{worker}".encode(), hashlib.sha256).hexdigest()


def proof_holds(secret: bytes, nonce: str, hello: Hello) -> bool:
    return hmac.compare_digest(proof(secret, nonce, hello.worker), hello.proof)
