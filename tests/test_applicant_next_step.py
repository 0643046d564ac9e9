"""Where the applicant's page goes on (re)load: back into a call that is on, the waiting
room, or the completion screen, in joint and two-step mode, read from the interview's life."""

from __future__ import annotations

import pytest

from common.names import Agency
from server.interview_actions import Action, CheckIn, Consent, Decide, End, Join, Ready, Seat
from server.interview_state import Party
from server.lifecycle import replay
from server.types import InterviewMode
from server.views.applicant import next_step

CBSA, CBP = Agency.CBSA, Agency.CBP
READY: list[Action] = [CheckIn(), Consent(), Ready()]
JOINT_CALL: list[Action] = [*READY, Seat(CBSA, 1), Seat(CBP, 2), Join(Party.APPLICANT)]
CBSA_CALL: list[Action] = [*READY, Seat(CBSA, 1), Join(Party.APPLICANT)]


@pytest.mark.parametrize(
    ("mode", "actions", "expected"),
    [
        ("joint", [], "wait"),
        ("joint", READY, "wait"),
        ("joint", [*READY, Seat(CBSA, 1)], "wait"),
        ("joint", JOINT_CALL, "join"),
        ("joint", [*JOINT_CALL, End(CBSA)], "done"),
        ("joint", [*JOINT_CALL, End(CBSA), Decide(CBSA, 1), Decide(CBP, 2)], "done"),
        ("two_step", READY, "wait"),
        ("two_step", CBSA_CALL, "join"),
        ("two_step", [*CBSA_CALL, End(CBSA)], "wait"),
        ("two_step", [*CBSA_CALL, Decide(CBSA, 1), End(CBSA)], "wait"),
        ("two_step", [*CBSA_CALL, Decide(CBSA, 1), End(CBSA), Ready(), Seat(CBP, 2)], "join"),
        (
            "two_step",
            [*CBSA_CALL, Decide(CBSA, 1), End(CBSA), Ready(), Seat(CBP, 2), End(CBP)],
            "done",
        ),
    ],
)
def test_the_page_resumes_at_the_right_step(
    mode: str, actions: list[Action], expected: str
) -> None:
    assert next_step(replay(InterviewMode(mode), actions)) == expected
