"""The WebSocket side of the attack, as data (`SocketScript`: one socket's frames), and
the strategies that draw it: messages close to the protocol of `signalling.messages`
(right type names with wrong fields, extra fields, huge strings, candidates with and
without their section, offers of junk or of a real offer mangled), raw text and binary;
and the garbage sent on the live call's own sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from signalling import messages as m

from .attack_inputs import (
    BASE_SDP,
    INTERVIEW_IDS,
    IV_LIVE,
    REFUSED_SOCKET_ROLES,
    SOCKET_ROLES,
    TOKEN_LIVE,
    json_trees,
    repeat,
    texts,
)


@dataclass(frozen=True)
class SocketScript:
    """One socket's life: opened as ``role`` with an Origin of kind ``origin``, sent
    ``frames`` (text or binary), then a probe whose answer shows all were handled."""

    role: str
    origin: str
    frames: tuple[str | bytes, ...]


# --- WebSocket -----------------------------------------------------------------------------

TYPES = ("join", "offer", "candidate", "state", "ready", "available", "leave", "end", "language")
FIELDS = (
    "interview_id",
    "sdp",
    "candidate",
    "sdp_mid",
    "sdp_mline_index",
    "audio",
    "video",
    "available",
    "language",
)
CANDIDATE_WORDS = (
    "candidate:1",
    "1",
    "udp",
    "tcp",
    "2130706431",
    "203.0.113.5",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "224.0.0.1",
    "x.local",
    "fe80::1%eth0",
    "5000",
    "0",
    "65536",
    "typ",
    "host",
    "srflx",
    "raddr",
    "rport",
    "tcptype",
    "passive",
    "",
)
candidates = st.one_of(
    st.lists(st.sampled_from(CANDIDATE_WORDS), max_size=12).map(" ".join),
    texts,
    repeat(st.just("a"), 1100),
)
SDP_JUNK = (
    "v=0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "m=audio 0 RTP/AVP 0",
    "a=rtpmap:96 VP8/90000",
    "a=mid:0",
    "a=group:BUNDLE 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
    "a=fingerprint:sha-256 00",
    "a=setup:actpass",
    "c=IN IP4 0.0.0.0",
    "a=sendrecv",
)
junk_sdps = st.one_of(
    st.lists(st.one_of(st.sampled_from(SDP_JUNK), texts), max_size=20).map("\r\n".join),
    repeat(st.sampled_from("ma=\r\n"), 40_000),
)


def _mutated_sdp(ops: list[tuple[int, int, int]]) -> str:
    """The base offer with some lines (by number) dropped (0), cut in half (1) or replaced
    by a line of SDP_JUNK (2): the scene applies these as it sends the offer."""
    return BASE_SDP + ":" + ",".join(f"{line}-{kind}-{junk}" for line, kind, junk in ops)


sdps = st.one_of(
    junk_sdps,
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 2), st.integers(0, len(SDP_JUNK) - 1)),
        max_size=4,
    ).map(_mutated_sdp),
)
field_values = st.one_of(
    json_trees,
    st.sampled_from(INTERVIEW_IDS),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from(("en", "fr", "0", "audio", "video")),
)
near_protocol = st.builds(
    lambda version, kind, fields, extra: {"v": version, "type": kind, **fields, **extra},
    st.one_of(st.just(1), st.just(1), json_trees),
    st.one_of(st.sampled_from(TYPES), texts, st.sampled_from(("error", "answer", "joined"))),
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=3),
    st.dictionaries(texts, json_trees, max_size=2),
)
well_typed = st.one_of(
    st.builds(
        lambda i: {"v": 1, "type": "join", "interview_id": i}, st.sampled_from(INTERVIEW_IDS)
    ),
    st.builds(
        lambda i: {"v": 1, "type": "ready", "interview_id": i}, st.sampled_from(INTERVIEW_IDS)
    ),
    st.builds(lambda s: {"v": 1, "type": "offer", "sdp": s}, sdps),
    st.builds(
        lambda c, mid, index: {
            "v": 1,
            "type": "candidate",
            "candidate": c,
            **({} if mid is None else {"sdp_mid": mid}),
            **({} if index is None else {"sdp_mline_index": index}),
        },
        candidates,
        st.one_of(st.none(), st.sampled_from(("0", "1", "9", "")), texts),
        st.one_of(st.none(), st.integers(-3, 20)),
    ),
    st.builds(
        lambda a, v: {"v": 1, "type": "state", "audio": a, "video": v}, st.booleans(), st.booleans()
    ),
    st.builds(lambda a: {"v": 1, "type": "available", "available": a}, st.booleans()),
    st.sampled_from(({"v": 1, "type": "leave"}, {"v": 1, "type": "end"})),
    st.builds(
        lambda lang: {"v": 1, "type": "language", "language": lang},
        st.sampled_from(("en", "fr", "de")),
    ),
)


def _text(message: Any) -> str:
    return json.dumps(message, ensure_ascii=False)


HUGE = (m.MAX_MESSAGE_BYTES, m.MAX_MESSAGE_BYTES + 1, 4 * m.MAX_MESSAGE_BYTES + 1)
frames: st.SearchStrategy[str | bytes] = st.one_of(
    near_protocol.map(_text),
    well_typed.map(_text),
    well_typed.map(_text),
    st.text(max_size=60),
    st.binary(max_size=60),
    st.sampled_from(HUGE).map(lambda n: '{"v":1,"type":"offer","sdp":"' + "x" * n + '"}'),
)
socket_scripts = st.builds(
    SocketScript,
    role=st.sampled_from(SOCKET_ROLES),
    origin=st.sampled_from(("none", "same")),
    frames=st.lists(frames, min_size=1, max_size=24).map(tuple),
)
refused_socket_scripts = st.one_of(
    st.builds(
        SocketScript,
        role=st.sampled_from(REFUSED_SOCKET_ROLES),
        origin=st.sampled_from(("none", "same", "foreign")),
        frames=st.just(()),
    ),
    st.builds(
        SocketScript,
        role=st.sampled_from(SOCKET_ROLES),
        origin=st.just("foreign"),
        frames=st.just(()),
    ),
)


def _garbage(frame: str | bytes) -> bool:
    """True if the server must refuse the frame without touching the call (naming other
    interviews is refused; naming the live one is a seat's own business)."""
    if isinstance(frame, bytes):
        return True
    if IV_LIVE in frame or TOKEN_LIVE in frame or len(frame) > 4 * m.MAX_MESSAGE_BYTES:
        return False  # a frame over the socket's limit closes it: other sockets try that
    try:
        message = m.decode_client(frame)
    except Exception:  # whatever the decoder says, it refused it
        return True
    # An offer with media sections might be taken as the seat's reconnection.
    return isinstance(message, m.Offer) and "m=" not in message.sdp and BASE_SDP not in frame


live_garbage = st.lists(frames.filter(_garbage), min_size=8, max_size=8).map(tuple)
