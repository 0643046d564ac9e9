"""The signalling protocol, version 1: typed messages with pure encode/decode.

Every message is a JSON object ``{"v": 1, "type": …, …}`` of at most `MAX_MESSAGE_BYTES`.
`decode_client` accepts only what a client may send and names the problem otherwise;
`encode` writes any message. See docs/signalling.md for the conversation.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .errors import ProtocolError

VERSION: Literal[1] = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP = 32 * 1024

Version = Literal[1]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SDP)]
InterviewRef = Annotated[str, msgspec.Meta(pattern=r"^iv_[0-9a-f]{16}$")]


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: Version = VERSION


# --- client to server ---------------------------------------------------------------


class Join(Message, tag="join"):
    """Take one's seat in an interview; the server answers `Joined`, then expects `Offer`."""

    interview_id: InterviewRef


class Offer(Message, tag="offer"):
    sdp: Sdp


class Candidate(Message, tag="candidate"):
    """A trickled ICE candidate (``candidate:…`` as the browser gives it), with the media
    section it belongs to: its mid, its index, or both."""

    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdp_mid: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=16)] | None = None

    def __post_init__(self) -> None:
        # msgspec reports this as a ValidationError, so decode_client names it.
        if self.sdp_mid is None and self.sdp_mline_index is None:
            raise ValueError(
                "a candidate needs sdp_mid or sdp_mline_index: send the sdpMid and "
                "sdpMLineIndex of the browser's RTCIceCandidate with it"
            )


class MediaState(Message, tag="state"):
    """The sender's own microphone and camera switches, shown to the others."""

    audio: bool
    video: bool


class ConnectionPath(Message, tag="path"):
    """How the sender's media reaches the server: ``direct`` (its selected ICE candidate
    pair is the browser's own or its NAT's address) or ``relayed`` (through TURN, over
    ``udp``, ``tcp`` or ``tls``), shown to the officers beside the sender's tile."""

    path: Literal["direct", "relayed"]
    protocol: Literal["udp", "tcp", "tls"] | None = None


class Ready(Message, tag="ready"):
    """An applicant who finished check-in enters the waiting room."""

    interview_id: InterviewRef


class Available(Message, tag="available"):
    """An officer is free (or not) to receive the next interview."""

    available: bool


class Leave(Message, tag="leave"):
    pass


class End(Message, tag="end"):
    """An officer ends the interview (or its step) for everyone in it."""


class Language(Message, tag="language"):
    """The page switched language: the server's messages on this socket follow."""

    language: Literal["en", "fr"]


ClientMessage = (
    Join
    | Offer
    | Candidate
    | MediaState
    | ConnectionPath
    | Ready
    | Available
    | Leave
    | End
    | Language
)

# --- server to client ---------------------------------------------------------------


class IceServer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A TURN server with this participant's own credentials, in the form the browser's
    ``RTCPeerConnection({iceServers})`` takes."""

    urls: list[str]
    username: str
    credential: str

    def __repr__(self) -> str:
        # The credential opens a relay: it is for the browser, never for a log.
        return f"IceServer(urls={self.urls!r}, username={self.username!r}, credential='***')"


class Joined(Message, tag="joined"):
    interview_id: str
    seat: str
    present: list[str]
    ice_servers: list[IceServer] = []
    """The relays this participant's peer connection may use; none without TURN."""


class Answer(Message, tag="answer"):
    sdp: str


class Peer(Message, tag="peer"):
    """Someone else's seat changed: join, drop, rejoin, leave or left."""

    seat: str
    event: str


class PeerState(Message, tag="peer_state"):
    seat: str
    audio: bool
    video: bool


class PeerPath(Message, tag="peer_path"):
    """Another seat's `ConnectionPath`."""

    seat: str
    path: Literal["direct", "relayed"]
    protocol: Literal["udp", "tcp", "tls"] | None = None


class Waiting(Message, tag="waiting"):
    position: int
    estimated_wait_seconds: int | None
    """0: officers are free, the call is about to start; None: no officer the interview
    needs is on duty, so no figure would mean anything."""


class Paired(Message, tag="paired"):
    interview_id: str
    seat: str


class Ended(Message, tag="ended"):
    """The interview (or, in two-step mode, its CBSA step: ``next`` is ``cbp``) is over."""

    by: str
    next: Literal["done", "cbp"] = "done"


class Updated(Message, tag="updated"):
    """To officers: the interview's record changed (``decision`` or ``still``)."""

    what: Literal["decision", "still"]


class Error(Message, tag="error"):
    code: str
    message: str


ServerMessage = (
    Joined | Answer | Peer | PeerState | PeerPath | Waiting | Paired | Ended | Updated | Error
)

_client_decoder = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()


def decode_client(raw: str | bytes) -> ClientMessage:
    """A client's message, or `ProtocolError` saying precisely what is wrong with it."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than {MAX_MESSAGE_BYTES}")
    try:
        message: ClientMessage = _client_decoder.decode(raw)
        return message
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from None


def decode_server(raw: str | bytes) -> ServerMessage:
    """For clients and tests: a server's message."""
    message: ServerMessage = msgspec.json.decode(raw, type=ServerMessage)
    return message


def encode(message: Message) -> str:
    return _encoder.encode(message).decode()
