"""The booking core: never overbooked, never outside a roster window, the waiting room's
order, and a second run books nobody twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from common.names import Agency
from server.scheduling import (
    Appointment,
    Hold,
    RosterWindow,
    book,
    free_visits,
    slot_starts,
    staffing,
)
from server.types import InterviewMode
from signalling.waiting_room import priority

DAY = datetime(2026, 12, 7, tzinfo=UTC)
SLOT = timedelta(minutes=15)
OFFICERS = {1: Agency.CBSA, 2: Agency.CBSA, 3: Agency.CBP, 4: Agency.CBP}


def window(officer_id: int, start_minute: int, minutes: int) -> RosterWindow:
    starts = DAY + timedelta(minutes=start_minute)
    return RosterWindow(
        officer_id, OFFICERS[officer_id], starts, starts + timedelta(minutes=minutes)
    )


windows_strategy = st.lists(
    st.builds(
        window,
        st.sampled_from(sorted(OFFICERS)),
        st.integers(0, 8 * 60),
        st.integers(5, 3 * 60),
    ),
    max_size=8,
)
modes = st.sampled_from(list(InterviewMode))
application_ids = st.lists(st.from_regex(r"A[0-9]{3}", fullmatch=True), max_size=40, unique=True)


def run(
    windows: list[RosterWindow],
    held: list[Hold],
    applications: list[str],
    mode: InterviewMode,
) -> list[Appointment]:
    return book(windows, held, applications, mode, SLOT, DAY, DAY + timedelta(days=1))


def held_by(appointments: list[Appointment]) -> list[Hold]:
    return [hold for appointment in appointments for hold in appointment.holds]


def rostered_throughout(windows: list[RosterWindow], hold: Hold) -> bool:
    """The officer's windows leave no gap in the held time (touching windows join)."""
    reached = hold.starts
    while reached < hold.ends:
        covering = [
            w.ends
            for w in windows
            if w.officer_id == hold.officer_id and w.starts <= reached < w.ends
        ]
        if not covering:
            return False
        reached = max(covering)
    return True


def assert_no_officer_held_twice(holds: list[Hold]) -> None:
    by_officer: dict[int, list[Hold]] = {}
    for hold in holds:
        for other in by_officer.get(hold.officer_id, []):
            assert not hold.overlaps(other.starts, other.ends), (hold, other)
        by_officer.setdefault(hold.officer_id, []).append(hold)


@settings(max_examples=150, deadline=None)
@given(windows_strategy, application_ids, modes)
def test_an_officer_slot_never_holds_two_appointments(
    windows: list[RosterWindow], applications: list[str], mode: InterviewMode
) -> None:
    assert_no_officer_held_twice(held_by(run(windows, [], applications, mode)))


@settings(max_examples=150, deadline=None)
@given(windows_strategy, application_ids, modes)
def test_every_hold_lies_inside_one_of_its_officers_windows(
    windows: list[RosterWindow], applications: list[str], mode: InterviewMode
) -> None:
    for appointment in run(windows, [], applications, mode):
        agencies = [hold.agency for hold in appointment.holds]
        assert sorted(agencies) == sorted(Agency)
        for hold in appointment.holds:
            assert hold.agency is OFFICERS[hold.officer_id]
            assert rostered_throughout(windows, hold)


@settings(max_examples=150, deadline=None)
@given(windows_strategy, application_ids, modes)
def test_earlier_applications_in_the_order_get_the_earlier_appointments(
    windows: list[RosterWindow], applications: list[str], mode: InterviewMode
) -> None:
    appointments = run(windows, [], applications, mode)
    booked = [a.application_id for a in appointments]
    assert booked == applications[: len(booked)]  # nobody skipped
    starts = [a.starts for a in appointments]
    assert starts == sorted(starts)


@settings(max_examples=150, deadline=None)
@given(windows_strategy, application_ids, application_ids, modes)
def test_a_second_run_counts_the_first_ones_bookings(
    windows: list[RosterWindow], first: list[str], more: list[str], mode: InterviewMode
) -> None:
    """As `schedule` runs it: the second time, those booked are no longer pending, and the
    time the first run held is held."""
    appointments = run(windows, [], first, mode)
    booked = {a.application_id for a in appointments}
    still_pending = [a for a in first + more if a not in booked]
    again = run(windows, held_by(appointments), still_pending, mode)
    assert not booked & {a.application_id for a in again}
    assert_no_officer_held_twice(held_by(appointments) + held_by(again))
    if len(appointments) == len(first) == len(set(first + more)):
        assert again == []


@settings(max_examples=100, deadline=None)
@given(windows_strategy, modes)
def test_time_already_held_is_not_booked_again(
    windows: list[RosterWindow], mode: InterviewMode
) -> None:
    taken = [Hold(w.officer_id, w.agency, w.starts, w.ends) for w in windows[::2]]
    new = held_by(run(windows, taken, [f"A{n:03}" for n in range(40)], mode))
    assert_no_officer_held_twice(new)
    for hold in new:
        assert not any(
            t.officer_id == hold.officer_id and t.overlaps(hold.starts, hold.ends) for t in taken
        )


def test_a_joint_appointment_needs_both_agencies_at_once() -> None:
    windows = [window(1, 0, 30), window(3, 15, 30)]
    appointments = run(windows, [], ["A1", "A2"], InterviewMode.JOINT)
    assert [(a.application_id, a.starts) for a in appointments] == [
        ("A1", DAY + timedelta(minutes=15))
    ]


def test_a_two_step_visit_puts_the_cbp_slot_right_after_the_cbsa_slot() -> None:
    windows = [window(1, 0, 30), window(3, 0, 45)]
    [first, second] = run(windows, [], ["A1", "A2", "A3"], InterviewMode.TWO_STEP)
    assert (first.starts, first.ends) == (DAY, DAY + 2 * SLOT)
    cbsa, cbp = first.holds
    assert (cbsa.agency, cbsa.starts, cbp.agency, cbp.starts) == (
        Agency.CBSA,
        DAY,
        Agency.CBP,
        DAY + SLOT,
    )
    assert second.starts == DAY + SLOT


def test_slots_are_aligned_whatever_the_window() -> None:
    starts = list(slot_starts(DAY + timedelta(minutes=7), DAY + timedelta(minutes=50), SLOT))
    assert starts == [DAY + timedelta(minutes=15), DAY + timedelta(minutes=30)]


def test_touching_windows_of_one_officer_are_one_stretch_of_time() -> None:
    windows = [window(1, 0, 20), window(1, 20, 25), window(3, 0, 60)]
    appointments = run(windows, [], ["A1", "A2", "A3", "A4"], InterviewMode.JOINT)
    assert [a.starts for a in appointments] == [DAY + timedelta(minutes=m) for m in (0, 15, 30)]


def test_free_visits_and_staffing_count_what_is_held() -> None:
    windows = [window(1, 0, 30), window(2, 0, 30), window(3, 0, 30)]
    held = [Hold(3, Agency.CBP, DAY, DAY + SLOT)]
    assert free_visits(windows, held, InterviewMode.JOINT, SLOT, DAY, DAY + timedelta(hours=1)) == [
        DAY + SLOT
    ]
    rows = staffing(windows, held, SLOT, DAY, DAY + timedelta(hours=1))
    assert [(r.starts, r.agency, r.rostered, r.booked, r.free) for r in rows] == [
        (DAY, Agency.CBSA, 2, 0, 2),
        (DAY, Agency.CBP, 1, 1, 0),
        (DAY + SLOT, Agency.CBSA, 2, 0, 2),
        (DAY + SLOT, Agency.CBP, 1, 0, 1),
    ]


def test_the_order_is_the_waiting_rooms() -> None:
    """Renewals first by soonest card expiry, then new applications by application date."""
    people = {
        "NEW-LATE": (date(2026, 3, 1), None),
        "NEW-EARLY": (date(2025, 1, 1), None),
        "RENEW-LATE": (date(2026, 5, 1), date(2027, 6, 1)),
        "RENEW-SOON": (date(2026, 6, 1), date(2027, 1, 1)),
    }
    order = sorted(people, key=lambda p: priority(*people[p]))
    assert order == ["RENEW-SOON", "RENEW-LATE", "NEW-EARLY", "NEW-LATE"]
    appointments = run([window(1, 0, 60), window(3, 0, 60)], [], order, InterviewMode.JOINT)
    assert [a.application_id for a in appointments] == order
