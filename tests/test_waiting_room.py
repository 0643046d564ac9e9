from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.types import Agency
from signalling.waiting_room import Need, Pairing, WaitingApplicant, WaitingRoom

NINE = datetime(2026, 12, 1, 9, tzinfo=UTC)


def applicant(
    name: str,
    scheduled: datetime = NINE,
    applied: date = date(2022, 5, 1),
    expiry: date | None = None,
    need: Need = Need.JOINT,
) -> WaitingApplicant:
    return WaitingApplicant(name, need, scheduled, applied, expiry)


def test_queue_order_scheduled_time_then_renewals_by_expiry_then_application_date() -> None:
    room = WaitingRoom()
    entries = [
        applicant("late", scheduled=NINE + timedelta(hours=1)),
        applicant("new-older", applied=date(2021, 1, 1)),
        applicant("new-newer", applied=date(2023, 1, 1)),
        applicant("renewal-later", expiry=date(2027, 6, 1)),
        applicant("renewal-soon", expiry=date(2026, 12, 15)),
    ]
    for entry in entries:
        room.add(entry)
    order = sorted(room.waiting(), key=room.position)
    assert order == ["renewal-soon", "renewal-later", "new-older", "new-newer", "late"]


def test_a_joint_interview_forms_as_soon_as_one_officer_of_each_agency_is_free() -> None:
    room = WaitingRoom()
    room.add(applicant("a"))
    room.set_available(1, Agency.CBSA, True)
    assert room.pair() == []
    room.set_available(2, Agency.CBP, True)
    assert room.pair() == [Pairing("a", Need.JOINT, {Agency.CBSA: 1, Agency.CBP: 2})]
    assert "a" not in room
    assert room.pair() == []  # both officers are busy now


def test_two_step_uses_a_free_cbsa_officer_while_joint_interviews_wait_for_cbp() -> None:
    room = WaitingRoom()
    room.add(applicant("joint-first", applied=date(2020, 1, 1)))
    room.add(applicant("two-step", need=Need.CBSA))
    room.set_available(7, Agency.CBSA, True)
    assert room.pair() == [Pairing("two-step", Need.CBSA, {Agency.CBSA: 7})]


def test_the_cbp_step_waits_for_a_cbp_officer_only() -> None:
    room = WaitingRoom()
    room.add(applicant("second-step", need=Need.CBP))
    room.set_available(3, Agency.CBSA, True)
    assert room.pair() == []
    room.set_available(4, Agency.CBP, True)
    assert room.pair() == [Pairing("second-step", Need.CBP, {Agency.CBP: 4})]


def test_the_officer_free_longest_goes_first_and_away_officers_are_skipped() -> None:
    room = WaitingRoom()
    for officer in (1, 2, 3):
        room.set_available(officer, Agency.CBSA, True)
    room.set_available(1, Agency.CBSA, False)
    room.add(applicant("x", need=Need.CBSA))
    room.add(applicant("y", need=Need.CBSA, applied=date(2023, 1, 1)))
    assert [p.officers[Agency.CBSA] for p in room.pair()] == [2, 3]


def test_position_and_estimated_wait() -> None:
    room = WaitingRoom(interview_seconds=600)
    for n in range(5):
        room.add(applicant(f"a{n}", applied=date(2022, 1, 1 + n)))
    assert [room.position(f"a{n}") for n in range(5)] == [1, 2, 3, 4, 5]
    room.set_available(1, Agency.CBSA, True)
    room.set_available(2, Agency.CBP, True)
    room.set_available(3, Agency.CBSA, True)
    room.set_available(4, Agency.CBP, True)
    assert room.estimated_wait_seconds("a0") == 0  # can start now
    assert room.estimated_wait_seconds("a2") == 1200  # two pairs on duty: second round
    room.pair()
    assert room.position("a2") == 1
    assert room.estimated_wait_seconds("a2") == 600  # both pairs busy: one round ahead


def test_leaving_and_re_entering_keeps_one_place() -> None:
    room = WaitingRoom()
    room.add(applicant("a"))
    room.add(applicant("a"))
    assert len(room) == 1
    room.remove("a")
    room.remove("a")
    assert len(room) == 0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5), st.integers(0, 400), st.booleans(), st.sampled_from(list(Need))
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda t: t,
    ),
    st.integers(0, 6),
    st.integers(0, 6),
)
def test_pairing_serves_the_earliest_servable_applicant_first(
    rows: list[tuple[int, int, bool, Need]], cbsa: int, cbp: int
) -> None:
    room = WaitingRoom()
    entries = [
        applicant(
            f"i{n}",
            NINE + timedelta(hours=h),
            date(2022, 1, 1) + timedelta(days=d),
            date(2027, 1, 1) + timedelta(days=d) if renewal else None,
            need,
        )
        for n, (h, d, renewal, need) in enumerate(rows)
    ]
    for entry in entries:
        room.add(entry)
    for officer in range(cbsa):
        room.set_available(100 + officer, Agency.CBSA, True)
    for officer in range(cbp):
        room.set_available(200 + officer, Agency.CBP, True)
    pairings = room.pair()
    # A simple model: go through everyone in queue order, seat whoever can be seated.
    free = {Agency.CBSA: cbsa, Agency.CBP: cbp}
    expected = []
    for entry in sorted(entries, key=lambda e: e.key):
        if all(free[a] for a in entry.need.agencies):
            # greedy by order holds only while nobody earlier is still waiting for the
            # same officers, which the per-need heads guarantee
            for a in entry.need.agencies:
                free[a] -= 1
            expected.append(entry.interview_id)
    assert sorted(p.interview_id for p in pairings) == sorted(expected)
    used = [o for p in pairings for o in p.officers.values()]
    assert len(used) == len(set(used))


@pytest.mark.parametrize("agency", list(Agency))
def test_an_officer_who_finished_is_free_again(agency: Agency) -> None:
    room = WaitingRoom()
    need = Need.CBSA if agency is Agency.CBSA else Need.CBP
    room.set_available(9, agency, True)
    room.add(applicant("a", need=need))
    assert room.pair()
    room.add(applicant("b", need=need))
    assert room.pair() == []
    room.finished(9, agency)
    assert [p.interview_id for p in room.pair()] == ["b"]
