"""Where the applicant's page goes on (re)load: back into a call that is on, the waiting
room, or the completion screen, in joint and two-step mode."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from server.store.interviews import Interview
from server.types import (
    AccountId,
    ApplicationId,
    InterviewId,
    InterviewMode,
    InterviewState,
)
from server.views.applicant import next_step

BASE = Interview(
    id=InterviewId("iv_0000000000000001"),
    application_id=ApplicationId("NX-0001"),
    mode=InterviewMode.JOINT,
    window_start=datetime(2026, 11, 22, 9, tzinfo=UTC),
    window_end=datetime(2026, 11, 22, 17, tzinfo=UTC),
    state=InterviewState.SCHEDULED,
    cbsa_officer_id=None,
    cbp_officer_id=None,
    dob_failures=0,
    dob_confirmed=True,
)
OFFICER = AccountId(7)


@pytest.mark.parametrize(
    ("mode", "cbsa", "cbp", "ended_by", "state", "expected"),
    [
        ("joint", False, False, set(), "scheduled", "wait"),
        ("joint", True, False, set(), "in_progress", "wait"),
        ("joint", True, True, set(), "in_progress", "join"),
        ("joint", True, True, {"cbsa"}, "in_progress", "done"),
        ("joint", True, True, set(), "completed", "done"),
        ("two_step", False, False, set(), "scheduled", "wait"),
        ("two_step", True, False, set(), "in_progress", "join"),
        ("two_step", True, False, {"cbsa"}, "in_progress", "wait"),
        ("two_step", True, True, {"cbsa"}, "in_progress", "join"),
        ("two_step", True, True, {"cbsa", "cbp"}, "in_progress", "done"),
    ],
)
def test_the_page_resumes_at_the_right_step(
    mode: str, cbsa: bool, cbp: bool, ended_by: set[str], state: str, expected: str
) -> None:
    interview = replace(
        BASE,
        mode=InterviewMode(mode),
        state=InterviewState(state),
        cbsa_officer_id=OFFICER if cbsa else None,
        cbp_officer_id=OFFICER if cbp else None,
    )
    assert next_step(interview, ended_by) == expected
