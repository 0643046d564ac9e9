"""The result rule of PRODUCT.md, exhaustively: every pair of verdicts, every status."""

from __future__ import annotations

import itertools

import pytest

from common.errors import Conflict
from server.application_status import (
    application_result,
    status_after_decisions,
    status_after_invite,
)
from server.types import ApplicationStatus as S
from server.types import Verdict as V

EXPECTED = {
    (V.APPROVE, V.APPROVE): S.APPROVED,
    (V.APPROVE, V.DENY): S.DENIED,
    (V.APPROVE, V.REFER): S.REFERRED,
    (V.DENY, V.APPROVE): S.DENIED,
    (V.DENY, V.DENY): S.DENIED,
    (V.DENY, V.REFER): S.DENIED,
    (V.REFER, V.APPROVE): S.REFERRED,
    (V.REFER, V.DENY): S.DENIED,
    (V.REFER, V.REFER): S.REFERRED,
}


def test_the_table_covers_every_pair_of_verdicts() -> None:
    assert set(EXPECTED) == set(itertools.product(V, V))


@pytest.mark.parametrize(("cbsa", "cbp"), sorted(EXPECTED))
def test_result_of_each_pair_of_decisions(cbsa: V, cbp: V) -> None:
    assert application_result(cbsa, cbp) is EXPECTED[(cbsa, cbp)]


def test_approved_only_if_both_approve() -> None:
    approved = [pair for pair in EXPECTED if application_result(*pair) is S.APPROVED]
    assert approved == [(V.APPROVE, V.APPROVE)]


@pytest.mark.parametrize("verdict", [*V, None])
def test_status_waits_for_both_agencies(verdict: V | None) -> None:
    assert status_after_decisions(S.SCHEDULED, verdict, None) is S.SCHEDULED
    assert status_after_decisions(S.SCHEDULED, None, verdict) is S.SCHEDULED


@pytest.mark.parametrize(("cbsa", "cbp"), sorted(EXPECTED))
def test_status_after_both_decisions_is_the_result(cbsa: V, cbp: V) -> None:
    assert status_after_decisions(S.SCHEDULED, cbsa, cbp) is EXPECTED[(cbsa, cbp)]


@pytest.mark.parametrize("current", [s for s in S if s is not S.SCHEDULED])
def test_decisions_only_apply_to_a_scheduled_application(current: S) -> None:
    with pytest.raises(Conflict):
        status_after_decisions(current, V.APPROVE, V.APPROVE)


@pytest.mark.parametrize(
    ("current", "allowed"),
    [
        (S.PENDING, True),
        (S.SCHEDULED, True),
        (S.REFERRED, True),
        (S.APPROVED, False),
        (S.DENIED, False),
    ],
)
def test_invite_schedules_unless_the_application_is_settled(current: S, allowed: bool) -> None:
    if allowed:
        assert status_after_invite(current) is S.SCHEDULED
    else:
        with pytest.raises(Conflict, match=f"already {current}"):
            status_after_invite(current)
