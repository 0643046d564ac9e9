"""Names of the domain: ID types and the closed sets of values the store accepts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import NewType

ApplicationId = NewType("ApplicationId", str)
InterviewId = NewType("InterviewId", str)
AccountId = NewType("AccountId", int)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC timestamps as stored: sortable text, second precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def aware_datetime(text: str) -> datetime:
    """A date and time a person typed (ISO 8601) with its zone, or ValueError saying what
    to change. A bare time is refused: officers in two countries would read it as two
    different moments."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. Z or -05:00")
    return moment


class Program(StrEnum):
    NEXUS = "NEXUS"
    FAST = "FAST"


class ApplicationType(StrEnum):
    NEW = "new"
    RENEWAL = "renewal"


class Role(StrEnum):
    APPLICANT = "applicant"
    OFFICER = "officer"
    AUDITOR = "auditor"
    OPERATOR = "operator"


class InterviewMode(StrEnum):
    JOINT = "joint"
    TWO_STEP = "two_step"


class InterviewState(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    INTERRUPTED = "interrupted"


class Verdict(StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    REFER = "refer"


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    APPROVED = "approved"
    DENIED = "denied"
    REFERRED = "referred"
