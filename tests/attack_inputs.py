"""What the attack suite sends: HTTP requests and WebSocket scripts as plain data, and the
hypothesis strategies that generate them.

Inputs are drawn before any is sent, so they name the running server's things (interview
ids, invitation tokens, the caller's CSRF token) by placeholders, which the scene fills in
as it sends them. No input may end the session it is sent with (`_sessions_survive`), so
every role keeps its sign-in for the whole attack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from server.views.routes import ROUTES
from signalling import messages as m

T = TypeVar("T")

# --- placeholders, filled in by the scene at send time ------------------------------------

IV_LIVE, IV_B, IV_C, IV_D, IV_E = "@@IV_LIVE@@", "@@IV_B@@", "@@IV_C@@", "@@IV_D@@", "@@IV_E@@"
TOKEN_LIVE, TOKEN_B, TOKEN_C, TOKEN_D = "@@TK_LIVE@@", "@@TK_B@@", "@@TK_C@@", "@@TK_D@@"
CSRF = "@@CSRF@@"
RIGHT_DOB_D = "@@DOB_D@@"
"""The locked link's right date of birth: must be refused (423) for the whole attack."""
LOCKED_USER, LOCKED_PASSWORD, LOCKED_CODE = "@@L_USER@@", "@@L_PASSWORD@@", "@@L_CODE@@"
"""The locked account's username, right password and current one-time code."""
BASE_SDP = "@@SDP@@"
"""A real offer from an aiortc client (4 sections beside the 2 it sends)."""

INTERVIEW_IDS = (IV_LIVE, IV_B, IV_C, IV_D, IV_E)
TOKENS = (TOKEN_LIVE, TOKEN_B, TOKEN_C, TOKEN_D)

ROLES = (
    "nobody",  # no cookie at all
    "anonymous",  # a cookie with a CSRF token, not signed in
    "applicant",  # applicant of interview B
    "other_applicant",  # applicant of interview C
    "cbsa_assigned",  # B's CBSA officer
    "cbp_assigned",  # B's CBP officer
    "unassigned_officer",
    "auditor",
    "live_cbsa",  # the live interview's CBSA officer (HTTP only: their socket is the call's)
)
SOCKET_ROLES = (
    "applicant",
    "other_applicant",
    "cbsa_assigned",
    "cbp_assigned",
    "unassigned_officer",
)
REFUSED_SOCKET_ROLES = ("nobody", "anonymous", "auditor")
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "PROPFIND", "TRACE")
MAX_BODY = 64 * 1024  # the max_body_bytes setting the scene runs with
MAX_STILL = 4 * 1024 * 1024


@dataclass(frozen=True)
class HttpInput:
    """One request's shape, sent once by each of its ``callers``."""

    callers: tuple[tuple[str, str], ...]
    """(role, CSRF): the CSRF token is ``right``, ``wrong``, ``missing``, ``empty``, or
    ``form`` (only in the body, if the body names it)."""
    method: str
    segments: tuple[str, ...]
    """The path's segments, raw (placeholders allowed); encoded by ``encoding``."""
    encoding: str
    """``quote``: each segment percent-encoded; ``raw``: '%' and '/' left as they are."""
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    content_length: str | None
    """A Content-Length that need not match the body (None: the true one)."""

    def path(self, filled: Callable[[str], str]) -> str:
        safe = "/%" if self.encoding == "raw" else ""
        return "/" + "/".join(
            quote(filled(s), safe=safe, errors="surrogatepass") for s in self.segments
        )


@dataclass(frozen=True)
class SocketScript:
    """One socket's life: opened as ``role`` with an Origin of kind ``origin``, sent
    ``frames`` (text or binary), then a probe whose answer shows all were handled."""

    role: str
    origin: str
    frames: tuple[str | bytes, ...]


Drawn = tuple[list[HttpInput], list[SocketScript], list[tuple[str | bytes, ...]]]


def drawn_in_another_process(counts: tuple[int, int, int, int]) -> Drawn:
    """The attack's inputs (HTTP shapes, socket scripts, refused sockets, live garbage
    rounds): for a process of their own, where nothing else uses `random` meanwhile and
    the drawing has a core to itself."""
    shapes, scripts, refused, garbage = counts
    return (
        drawn(http_inputs, shapes),
        drawn(socket_scripts, scripts) + drawn(refused_socket_scripts, refused),
        drawn(live_garbage, garbage),
    )


def drawn(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` examples of ``strategy``, the same on every run."""
    found: list[T] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def keep(value: T) -> None:
        found.append(value)

    keep()
    return found


# --- values ------------------------------------------------------------------------------

ODD_VALUES = (
    "²",
    "\u0661",
    "\uff11",  # a fullwidth digit one
    "..",
    "../..",
    "..%2f..%2fserver%2fapp.py",
    "%2e%2e%2f",
    "\x00",
    "a\x00b",
    "iv_0000000000000000",
    "iv_" + "f" * 17,
    "-1",
    "0",
    "1",
    "01",
    "1e3",
    " 1",
    "0x1f",
    "9" * 20,
    "5" * 5000,
    "\u202e",
    "\ud800",
    "null",
    "true",
    "[]",
    "{}",
    "<script>",
    "'; DROP TABLE interviews; --",
    "%",
    "%%",
    "?",
    "#",
    "\\",
    "//evil.example",
    "http://evil.example/",
    "\t",
    "ǅ" * 300,
)


def _repeat(char: st.SearchStrategy[str], longest: int) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, char, st.integers(1, longest))


texts = st.text(max_size=24)
odd = st.sampled_from(ODD_VALUES)
values = st.one_of(
    texts,
    odd,
    st.sampled_from(INTERVIEW_IDS + TOKENS),
    _repeat(st.characters(codec="utf-8"), 400),
)
path_values = st.one_of(values, st.sampled_from(("1", "2", "0", "999999999", "1000000000")))


# --- HTTP ----------------------------------------------------------------------------------


def _route_segments(path: str) -> st.SearchStrategy[tuple[str, ...]]:
    parts = [p for p in path.split("/") if p]
    choices = [path_values if p.startswith("{") else st.just(p) for p in parts]
    return st.tuples(*choices)


ROUTE_PATHS = sorted({route.path for route in ROUTES})
OTHER_PATHS = (
    "/static/{x}",
    "/static/{x}/{y}",
    "/static/css/{x}",
    "/{x}",
    "/api/{x}",
    "/api/interviews/{x}/{y}",
    "/api/interviews/{x}/stills/{y}/{z}",
    "/i/{x}/{y}",
    "/ws/{x}",
)
segments = st.one_of(
    st.sampled_from(ROUTE_PATHS).flatmap(_route_segments),
    st.sampled_from(OTHER_PATHS).flatmap(_route_segments),
    st.sampled_from(ROUTE_PATHS).map(lambda p: (*[s for s in p.split("/") if s], "")),
)

FIELD_NAMES = (
    "csrf_token",
    "username",
    "password",
    "code",
    "date_of_birth",
    "language",
    "next",
    "available",
    "verdict",
    "reason_codes",
    "notes",
    "text_version",
    "page",
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
json_trees = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63, max_value=2**80),
        st.floats(),
        values,
        st.sampled_from(("approve", "deny", "refer", "en", "fr", "2026-11-01", CSRF)),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=12,
)


def _json_bytes(tree: Any) -> bytes:
    return json.dumps(tree, ensure_ascii=False).encode("utf-8", "surrogatepass")


form_values = st.one_of(
    values,
    st.sampled_from(("1999-01-01", "2026-11-01", "fr", "en", "000000", "/")),
    st.sampled_from((CSRF, LOCKED_USER, LOCKED_PASSWORD, LOCKED_CODE, RIGHT_DOB_D)),
)
forms = st.lists(st.tuples(keys, form_values), max_size=6).map(
    lambda pairs: urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
)
SIZES = (MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 2 * MAX_BODY)
sized = st.builds(
    lambda filler, size: (filler * size)[:size],
    st.sampled_from((b"x", b"[", b"{", b'{"a":', b"a=b&", b"\xff\xd8\xff", b"\x00")),
    st.sampled_from(SIZES),
)
bodies = st.one_of(
    st.none(),
    json_trees.map(_json_bytes),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_trees, max_size=4).map(_json_bytes),
    forms,
    st.binary(max_size=512),
    sized,
    st.just(b"\xff\xd8\xff\xe0" + b"\x00" * 64),  # a JPEG's start, then nothing
)
CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=x-unknown",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "image/jpeg",
    "application/octet-stream",
    "",
    ";;;",
    "application/json; charset=latin-1",
)
HEADER_NAMES = (
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Content-Encoding",
    "Origin",
    "Referer",
    "X-Forwarded-For",
    "Upgrade",
    "Sec-WebSocket-Version",
    "Range",
    "If-None-Match",
    "If-Modified-Since",
    "Cookie",
)
header_values = st.one_of(
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=40,
    ),
    st.sampled_from(
        (
            "gzip",
            "deflate",
            "br",
            "zstd",
            "fr-CA,fr;q=0.9,en;q=0.8",
            "*;q=NaN",
            "en;q=1e999",
            "websocket",
            "bytes=0-0,-1",
            "nexus_session=" + "A" * 200,
            "text/html",
            "application/json",
        )
    ),
    _repeat(st.sampled_from("a,;=q"), 7000),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=3)
content_lengths = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.sampled_from(("99999999999999999999999", str(MAX_BODY + 1), str(MAX_STILL + 1), "-1")),
)


def _sessions_survive(shape: HttpInput) -> HttpInput:
    """Signing out, or signing in on a role's cookie, would end that role's session: such
    requests go with a wrong CSRF token, or from the anonymous cookie."""
    path = "/".join(shape.segments)
    callers = []
    for role, csrf in shape.callers:
        signed_in = role not in ("nobody", "anonymous")
        if shape.method == "POST" and path == "logout" and signed_in:
            csrf = "wrong"
        if shape.body and RIGHT_DOB_D.encode() in shape.body:
            role = "anonymous"
        callers.append((role, csrf))
    return replace(shape, callers=tuple(dict.fromkeys(callers)))


callers = st.lists(
    st.tuples(
        st.sampled_from(ROLES),
        st.sampled_from(("right", "right", "wrong", "missing", "empty", "form")),
    ),
    min_size=2,
    max_size=6,
    unique_by=lambda caller: caller[0],
).map(tuple)
http_inputs = st.builds(
    HttpInput,
    callers=callers,
    method=st.one_of(st.sampled_from(("GET", "POST")), st.sampled_from(METHODS)),
    segments=segments,
    encoding=st.sampled_from(("quote", "quote", "raw")),
    query=st.lists(st.tuples(keys, values), max_size=3).map(tuple),
    headers=st.tuples(st.sampled_from(CONTENT_TYPES), headers).map(
        lambda t: ((("Content-Type", t[0]),) if t[0] is not None else ()) + tuple(t[1])
    ),
    body=bodies,
    content_length=content_lengths,
).map(_sessions_survive)


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
    _repeat(st.just("a"), 1100),
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
    _repeat(st.sampled_from("ma=\r\n"), 40_000),
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
