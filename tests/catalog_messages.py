"""Every message id the pages and scripts use, found in their source (for the catalog tests).

Templates mark text with ``T("…")`` / ``_("…")`` (and ``data-title``); scripts pass it
to ``say``/``t`` or hold it as a capitalised phrase (``"Connection: good"``) or as the
head of a ``["Label", value]`` pair. Reason-code texts come from the server's table.
"""

from __future__ import annotations

import re
from pathlib import Path

import web
from server.backlog import BacklogState
from server.reason_codes import REASON_CODES
from server.store.invitations import InvitationStatus
from server.types import ApplicationStatus, ApplicationType, InterviewMode, Verdict
from server.views.audit_console import ACTIONS, OUTCOMES, STATUSES
from server.views.operator_actions import NOTICES
from server.views.operator_console import CHART_TITLES

TEMPLATE_PATTERNS = (
    re.compile(r'\b(?:T|_)\(\s*"((?:[^"\\]|\\.)*)"'),
    re.compile(r"\b(?:T|_)\(\s*'((?:[^'\\]|\\.)*)'"),
    re.compile(r'data-title="([^"]+)"'),
)
SCRIPT_PATTERNS = (
    re.compile(r'\b(?:t|say)\((?:[^,()"]+,\s*)?"((?:[^"\\]|\\.)*)"'),
    re.compile(r'"([A-Z][^"]*\s[^"]*)"'),
    re.compile(r'\[\s*"([A-Z][^"]*)",'),
    re.compile(r'"(\{[a-z]+\}[^"]*\s[^"]*)"'),
    re.compile(r'"([a-z][a-z-]*(?: [a-z{}-]+)+)"'),  # lowercase phrases: "consent recorded"
)
NOT_MESSAGES = frozenset({"Content-Type", "X-CSRF-Token"})


def template_messages() -> set[str]:
    found: set[str] = set()
    for path in [*web.TEMPLATES.glob("*.html"), *web.TEMPLATES.glob("mail/*")]:
        text = path.read_text("utf-8")
        for pattern in TEMPLATE_PATTERNS:
            found |= set(pattern.findall(text))
    return found


def script_messages() -> set[str]:
    found: set[str] = set()
    for path in web.STATIC.glob("*.js"):
        text = path.read_text("utf-8")
        for pattern in SCRIPT_PATTERNS:
            found |= set(pattern.findall(text))
    return found - NOT_MESSAGES


def server_word_messages() -> set[str]:
    """Reason-code texts; verdict, status and application-type words the scripts translate;
    the operator console's state names and chart titles."""
    codes = {text for codes in REASON_CODES.values() for text in codes.values()}
    words = {v.value for v in Verdict} | {s.value for s in ApplicationStatus}
    audit = {*ACTIONS, *STATUSES, *OUTCOMES, *(mode.value for mode in InterviewMode)}
    operator = {state.label for state in BacklogState} | set(CHART_TITLES) | set(NOTICES)
    operator |= {status.value for status in InvitationStatus}
    return codes | words | audit | operator | {kind.value for kind in ApplicationType}


def all_messages() -> set[str]:
    return template_messages() | script_messages() | server_word_messages()


def source_files() -> list[Path]:
    return [*web.TEMPLATES.glob("*.html"), *web.TEMPLATES.glob("mail/*"), *web.STATIC.glob("*.js")]
