"""What the attack suite sends, in common: the placeholders that stand for the running
server's things (interview ids, invitation tokens, the caller's CSRF token; the scene fills
them in as it sends), the roles, the values both requests and frames are made of, and how
examples are drawn. The requests are in `attack_requests`, the WebSocket frames in
`attack_frames`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

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


def repeat(char: st.SearchStrategy[str], longest: int) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, char, st.integers(1, longest))


texts = st.text(max_size=24)
odd = st.sampled_from(ODD_VALUES)
values = st.one_of(
    texts,
    odd,
    st.sampled_from(INTERVIEW_IDS + TOKENS),
    repeat(st.characters(codec="utf-8"), 400),
)
path_values = st.one_of(values, st.sampled_from(("1", "2", "0", "999999999", "1000000000")))


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


def json_bytes(tree: Any) -> bytes:
    return json.dumps(tree, ensure_ascii=False).encode("utf-8", "surrogatepass")
