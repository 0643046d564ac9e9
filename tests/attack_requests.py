"""The HTTP requests of the attack, as data (`HttpInput`), and the strategy that draws
them: every route of the route table and then some, every method, every role, with
odd path parameters, query strings, headers and bodies.

No request may end the session it is sent with (`_sessions_survive`), so every role keeps
its sign-in for the whole attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from server.views.routes import ROUTES

from .attack_inputs import (
    CSRF,
    FIELD_NAMES,
    LOCKED_CODE,
    LOCKED_PASSWORD,
    LOCKED_USER,
    MAX_BODY,
    MAX_STILL,
    METHODS,
    RIGHT_DOB_D,
    ROLES,
    json_bytes,
    json_trees,
    keys,
    path_values,
    repeat,
    values,
)


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
    json_trees.map(json_bytes),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_trees, max_size=4).map(json_bytes),
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
    repeat(st.sampled_from("a,;=q"), 7000),
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
