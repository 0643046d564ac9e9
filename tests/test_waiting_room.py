from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.names import Agency
from signalling.waiting_room import (
    DEFAULT_INTERVIEW_SECONDS,
    OVERRUN_SECONDS,
    RECENT_INTERVIEWS,
    Estimate,
    Need,
    Pairing,
    WaitingApplicant,
    WaitingRoom,
    typical_interview_seconds,
)

NINE = datetime(2026, 12, 1, 9, tzinfo=UTC)
NOW = NINE.timestamp()


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
    assert room.estimated_wait_seconds("a0", NOW) == 0  # can start now
    assert room.estimated_wait_seconds("a2", NOW) == 600  # two pairs free: second round
    room.pair(NOW)
    assert room.position("a2") == 1
    assert room.estimated_wait_seconds("a2", NOW) == 600  # both pairs busy: one round ahead


def test_no_wait_figure_while_no_officer_of_a_needed_agency_is_on_duty() -> None:
    room = WaitingRoom(interview_seconds=600)
    room.add(applicant("joint"))
    room.add(applicant("cbsa-step", need=Need.CBSA))
    room.set_available(1, Agency.CBSA, True)
    room.set_available(2, Agency.CBSA, True)
    room.pair(NOW)  # the CBSA step takes one of the two
    estimates = room.estimates(NOW)
    assert estimates["joint"] == Estimate(position=1, seconds=None)  # no CBP officer at all


def test_the_wait_counts_only_the_officers_of_the_applicant_s_step() -> None:
    room = WaitingRoom(interview_seconds=600)
    for n in range(4):
        room.add(applicant(f"c{n}", need=Need.CBSA, applied=date(2022, 1, 1 + n)))
    room.set_available(1, Agency.CBSA, True)
    room.set_available(2, Agency.CBSA, True)
    assert [p.interview_id for p in room.pair(NOW)] == ["c0", "c1"]
    # Two CBSA officers busy for a typical interview each; nobody from CBP is needed.
    assert room.estimated_wait_seconds("c2", NOW) == 600
    assert room.estimated_wait_seconds("c3", NOW) == 600
    room.add(applicant("c4", need=Need.CBSA, applied=date(2022, 2, 1)))
    assert room.estimated_wait_seconds("c4", NOW) == 1200


def test_a_cbp_step_is_not_behind_applicants_waiting_for_cbsa_only() -> None:
    room = WaitingRoom()
    room.add(applicant("cbsa-first", need=Need.CBSA, applied=date(2020, 1, 1)))
    room.add(applicant("joint", applied=date(2021, 1, 1)))
    room.add(applicant("cbp-step", need=Need.CBP))
    assert room.position("cbp-step") == 2  # behind the joint interview only
    assert room.position("joint") == 2


def test_the_estimate_follows_the_median_of_recent_interviews() -> None:
    assert typical_interview_seconds([]) == DEFAULT_INTERVIEW_SECONDS
    assert typical_interview_seconds([300, 1200, 420]) == 420
    newest = [240.0] * RECENT_INTERVIEWS
    assert typical_interview_seconds([*newest, 3600, 3600, 3600]) == 240  # older ones age out
    room = WaitingRoom()
    room.set_available(1, Agency.CBP, True)
    room.add(applicant("first", need=Need.CBP))
    room.pair(NOW)
    room.add(applicant("next", need=Need.CBP))
    assert room.estimated_wait_seconds("next", NOW) == DEFAULT_INTERVIEW_SECONDS
    room.learn_interview_lengths([480, 300, 720])
    assert room.estimated_wait_seconds("next", NOW) == 480


def test_a_busy_officer_counts_what_is_left_of_their_interview() -> None:
    room = WaitingRoom(interview_seconds=600)
    room.set_available(1, Agency.CBSA, True)
    room.add(applicant("first", need=Need.CBSA))
    room.pair(NOW)
    room.add(applicant("next", need=Need.CBSA))
    assert room.estimated_wait_seconds("next", NOW + 400) == 200
    # Running longer than usual: it should end soon, but not "shortly".
    assert room.estimated_wait_seconds("next", NOW + 900) == OVERRUN_SECONDS


def test_free_officers_and_an_applicant_due_within_a_minute_is_shortly() -> None:
    room = WaitingRoom(interview_seconds=600)
    soon = NINE + timedelta(seconds=40)
    room.add(applicant("early", scheduled=soon))
    room.set_available(1, Agency.CBSA, True)
    room.set_available(2, Agency.CBP, True)
    assert room.pair(NOW) == []  # not before the scheduled time
    assert room.estimates(NOW)["early"] == Estimate(position=1, seconds=0)
    assert room.estimates(NOW)["early"].shortly
    assert room.next_scheduled_time(NOW) == soon.timestamp()
    assert [p.interview_id for p in room.pair(soon.timestamp())] == ["early"]


def test_an_early_applicant_waits_for_their_time_while_later_ones_in_line_are_served() -> None:
    room = WaitingRoom(interview_seconds=600)
    room.add(applicant("in-an-hour", scheduled=NINE + timedelta(hours=1)))
    room.add(applicant("cbsa-step-now", need=Need.CBSA))
    room.set_available(1, Agency.CBSA, True)
    room.set_available(2, Agency.CBP, True)
    assert [p.interview_id for p in room.pair(NOW)] == ["cbsa-step-now"]
    # The CBP officer is free, the CBSA one busy for 10 min: the hour is what counts.
    assert room.estimated_wait_seconds("in-an-hour", NOW) == 3600


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


@given(
    st.lists(
        st.tuples(st.integers(-2, 3), st.integers(0, 400), st.sampled_from(list(Need))),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 2),
)
def test_estimates_agree_with_the_pairing_and_keep_queue_order(
    rows: list[tuple[int, int, Need]], cbsa: int, cbp: int, busy: int
) -> None:
    room = WaitingRoom(interview_seconds=600)
    for officer in range(busy):  # busy with interviews begun up to two minutes ago
        room.set_available(300 + officer, Agency.CBSA, True)
        earlier = NINE - timedelta(days=1)
        room.add(applicant(f"busy{officer}", need=Need.CBSA, scheduled=earlier))
        room.pair(NOW - 60 * officer)
    entries = [
        applicant(
            f"i{n}", NINE + timedelta(minutes=30 * h), date(2022, 1, 1) + timedelta(d), None, need
        )
        for n, (h, d, need) in enumerate(rows)
    ]
    for entry in entries:
        room.add(entry)
    for officer in range(cbsa):
        room.set_available(100 + officer, Agency.CBSA, True)
    for officer in range(cbp):
        room.set_available(200 + officer, Agency.CBP, True)
    before = room.estimates(NOW)
    on_duty = {Agency.CBSA: cbsa + busy, Agency.CBP: cbp}
    for entry in entries:
        staffed = all(on_duty[agency] for agency in entry.need.agencies)
        assert (before[entry.interview_id].seconds is None) is not staffed
    for need in Need:  # later in a need's line never waits less
        line = sorted((e for e in entries if e.need is need), key=lambda e: e.key)
        waits = [before[e.interview_id].seconds for e in line]
        known = [w for w in waits if w is not None]
        assert known == sorted(known)
    for pairing in room.pair(NOW):  # whoever the pairing serves now was told "shortly"
        assert before[pairing.interview_id].shortly
