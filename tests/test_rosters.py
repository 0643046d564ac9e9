"""Rosters and `schedule` on a real SQLite store: windows validated, appointments booked
through the interview store, never overbooked, and a second run books nobody twice."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from common.errors import BadRequest, Conflict, ImportRejected, NotFound
from common.names import Agency
from common.secret import Secret
from server import appointments, rosters
from server.interview_actions import NoShow
from server.lifecycle import apply
from server.settings import Settings, load_settings
from server.store import Store
from server.types import ApplicationStatus, InterviewMode

from .fakes import FakeClock, add_applications, application, nexus_interview

MONDAY = datetime(2030, 1, 7, 14, tzinfo=UTC)


async def officers(store: Store) -> None:
    for username, agency in (("cbsa1", Agency.CBSA), ("cbp1", Agency.CBP), ("cbp2", Agency.CBP)):
        country = agency.home_country
        await store.accounts.add_officer(
            username, username, agency, country, "x", Secret("JBSWY3DPEHPK3PXP")
        )


async def test_a_window_must_end_after_it_start_have_a_zone_and_a_known_officer(
    store: Store,
) -> None:
    await officers(store)
    with pytest.raises(BadRequest, match="must end after it starts"):
        await rosters.add_window(store, "cbsa1", MONDAY, MONDAY)
    with pytest.raises(BadRequest, match="time zone"):
        await rosters.add_window(store, "cbsa1", MONDAY.replace(tzinfo=None), MONDAY)
    with pytest.raises(NotFound, match="no officer named 'nobody'"):
        await rosters.add_window(store, "nobody", MONDAY, MONDAY + timedelta(hours=1))
    with pytest.raises(BadRequest, match="needs a time zone"):
        rosters.aware("2030-01-07T09:00", "--starts")


async def test_one_officers_windows_never_overlap_and_adding_one_again_changes_nothing(
    store: Store,
) -> None:
    await officers(store)
    first, new = await rosters.add_window(store, "cbsa1", MONDAY, MONDAY + timedelta(hours=2))
    assert new
    assert await rosters.add_window(store, "cbsa1", MONDAY, MONDAY + timedelta(hours=2)) == (
        first,
        False,
    )
    with pytest.raises(Conflict, match="overlaps the officer's window"):
        await rosters.add_window(
            store, "cbsa1", MONDAY + timedelta(hours=1), MONDAY + timedelta(hours=3)
        )
    # Another officer, and the time right after, are fine.
    await rosters.add_window(store, "cbp1", MONDAY, MONDAY + timedelta(hours=2))
    await rosters.add_window(
        store, "cbsa1", MONDAY + timedelta(hours=2), MONDAY + timedelta(hours=3)
    )
    listed = await rosters.list_windows(store, MONDAY, MONDAY + timedelta(days=1), "cbsa1")
    assert [(w.username, w.agency) for w in listed] == [("cbsa1", Agency.CBSA)] * 2


async def test_a_roster_file_with_a_bad_row_adds_nothing(store: Store, tmp_path: Path) -> None:
    await officers(store)
    path = tmp_path / "roster.csv"
    path.write_text(
        "officer,starts,ends\n"
        "cbsa1,2030-01-07T09:00-05:00,2030-01-07T12:00-05:00\n"
        "cbsa1,2030-01-07T11:00-05:00,2030-01-07T13:00-05:00\n"
        "cbp1,2030-01-07T09:00,2030-01-07T12:00-05:00\n"
        "cbp2,2030-01-07T12:00-05:00,2030-01-07T09:00-05:00\n"
        "ghost,2030-01-07T09:00-05:00,2030-01-07T12:00-05:00\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        await rosters.import_roster(store, path)
    assert [line for line, _ in caught.value.problems] == [3, 4, 5]
    assert await store.rosters.windows(MONDAY - timedelta(days=1), MONDAY + timedelta(days=1)) == []
    path.write_text(
        "officer,starts,ends\n"
        "cbsa1,2030-01-07T09:00-05:00,2030-01-07T12:00-05:00\n"
        "ghost,2030-01-07T09:00-05:00,2030-01-07T12:00-05:00\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected, match="line 3: there is no officer named 'ghost'"):
        await rosters.import_roster(store, path)
    path.write_text(
        "officer,starts,ends\ncbsa1,2030-01-07T09:00-05:00,2030-01-07T12:00-05:00\n",
        encoding="utf-8",
    )
    assert await rosters.import_roster(store, path) == (1, 0)
    assert await rosters.import_roster(store, path) == (0, 1)


async def staffed_monday(store: Store) -> None:
    """One CBSA and two CBP officers, each for an hour (four slots) from MONDAY."""
    await officers(store)
    for username in ("cbsa1", "cbp1", "cbp2"):
        await rosters.add_window(store, username, MONDAY, MONDAY + timedelta(hours=1))


async def test_schedule_books_in_priority_order_without_overbooking_and_twice_books_nobody(
    store: Store, settings: Settings
) -> None:
    await staffed_monday(store)
    await add_applications(
        store,
        *(application(f"NX-000{n}", applied_on=date(2022, 6, n)) for n in range(1, 7)),
        application("NX-0009", application_type="renewal", card_expiry=date(2023, 1, 1)),
    )
    now = MONDAY - timedelta(days=1)
    dry = await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT, dry_run=True)
    assert [a.application_id for a in dry.appointments] == [
        "NX-0009",
        "NX-0001",
        "NX-0002",
        "NX-0003",
    ]
    assert await store.interviews.all() == []  # the dry run booked nothing
    first = await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT)
    assert [a.application_id for a in first.appointments] == [
        a.application_id for a in dry.appointments
    ]
    booked = await store.interviews.all()
    assert len(booked) == 4
    assert sorted(i.window_start for i in booked) == [
        MONDAY + timedelta(minutes=15 * n) for n in range(4)
    ]
    assert all(
        i.window_end - i.window_start == timedelta(minutes=15 + settings.appointment_grace_minutes)
        for i in booked
    )
    assert (await store.applications.get("NX-0009")).status is ApplicationStatus.SCHEDULED
    again = await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT)
    assert (again.pending, again.appointments) == (3, [])  # the one CBSA officer is full
    assert len(await store.interviews.all()) == 4
    staffing = await appointments.day_staffing(store, settings, date(2030, 1, 7))
    assert staffing["agencies"] == {
        "CBSA": {"slots": 4, "booked": 4, "free": 0},
        "CBP": {"slots": 8, "booked": 4, "free": 4},
    }


async def test_two_runs_at_once_never_hold_one_officers_slot_twice(
    store: Store, settings: Settings
) -> None:
    """Both plan from the same free slots; the store's check at booking refuses the
    second of each pair, which is counted as skipped."""
    await staffed_monday(store)
    await add_applications(store, *(application(f"NX-000{n}") for n in range(1, 10)))
    now = MONDAY - timedelta(days=1)
    runs = await asyncio.gather(
        *(appointments.schedule(store, settings, now, 3, InterviewMode.JOINT) for _ in range(2))
    )
    assert sum(len(run.appointments) for run in runs) == 4
    holds = await store.rosters.holds(MONDAY, MONDAY + timedelta(hours=1))
    taken = [(hold.officer_id, hold.starts) for hold in holds]
    assert len(taken) == len(set(taken)) == 8
    scheduled = [i for i in await store.interviews.all() if i.state == "scheduled"]
    assert len({i.window_start for i in scheduled}) == 4


async def test_a_booked_window_cannot_be_removed(store: Store, settings: Settings) -> None:
    await staffed_monday(store)
    await add_applications(store, application("NX-0001"))
    await appointments.schedule(store, settings, MONDAY - timedelta(days=1), 3, InterviewMode.JOINT)
    [window, *_] = await store.rosters.windows(MONDAY, MONDAY + timedelta(hours=1))
    with pytest.raises(Conflict, match="1 appointment"):
        await store.rosters.remove_window(window.id)
    with pytest.raises(NotFound):
        await store.rosters.remove_window(999)


async def test_two_step_visits_hold_a_cbsa_slot_then_a_cbp_slot(
    store: Store, settings: Settings
) -> None:
    await staffed_monday(store)
    await add_applications(store, *(application(f"NX-000{n}") for n in range(1, 6)))
    run = await appointments.schedule(
        store, settings, MONDAY - timedelta(days=1), 2, InterviewMode.TWO_STEP
    )
    # The CBSA officer's four slots, less the last (its CBP slot would be past the roster).
    assert [a.starts for a in run.appointments] == [
        MONDAY + timedelta(minutes=15 * n) for n in range(3)
    ]


async def no_show(store: Store, interview_id: str) -> None:
    interview = await store.interviews.get(interview_id)
    async with store.database.transaction() as db:
        await store.interviews.save_life(db, interview_id, apply(interview.life, NoShow()).life)


@pytest.mark.parametrize(("rule", "re_invited"), [("return", False), ("re-invite", True)])
async def test_a_no_show_is_re_invited_or_returned_to_the_queue_once(
    tmp_path: Path, clock: FakeClock, rule: str, re_invited: bool
) -> None:
    settings = load_settings(
        {},
        {"data_dir": str(tmp_path), "no_show_rule": rule, "schedule_notice_hours": "0"},
    )
    store = await Store(settings.database_path, clock).open()
    try:
        await officers(store)
        for username in ("cbsa1", "cbp1"):
            await rosters.add_window(store, username, MONDAY, MONDAY + timedelta(hours=1))
        await add_applications(store, application("NX-0001"))
        now = MONDAY - timedelta(days=1)
        await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT)
        [missed] = await store.interviews.all()
        await no_show(store, missed.id)
        for _ in range(2):  # the sweep runs again: nothing happens twice
            await appointments.follow_up_no_shows(store, settings, MONDAY + timedelta(minutes=20))
        status = (await store.applications.get("NX-0001")).status
        interviews = await store.interviews.all()
        if re_invited:
            assert status is ApplicationStatus.SCHEDULED
            [new] = [i for i in interviews if i.id != missed.id]
            assert new.window_start == MONDAY + timedelta(minutes=30)
        else:
            assert status is ApplicationStatus.PENDING
            assert len(interviews) == 1
    finally:
        await store.close()


def test_the_roster_and_schedule_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    for username, agency in (("cbsa1", "CBSA"), ("cbp1", "CBP")):
        done = nexus_interview(
            "--data-dir", data, "officers", "add", "--username", username, "--name", username,
            "--agency", agency, "--password-stdin", stdin="a long enough password 1\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    # Two days ahead at 14:00 is always past the default day's notice and inside 3 days.
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(hour=14, minute=0, second=0)
    ends = starts + timedelta(minutes=30)
    for username in ("cbsa1", "cbp1"):
        done = nexus_interview(
            "--data-dir", data, "roster", "add", "--officer", username,
            "--starts", starts.isoformat(), "--ends", ends.isoformat(),
        )  # fmt: skip
        assert done.returncode == 0 and "added window" in done.stdout, done.stderr
    bad = nexus_interview(
        "--data-dir", data, "roster", "add", "--officer", "cbp1",
        "--starts", ends.isoformat(), "--ends", starts.isoformat(),
    )  # fmt: skip
    assert bad.returncode == 1 and "must end after it starts" in bad.stderr
    listed = nexus_interview("--data-dir", data, "roster", "list", "--days", "3")
    assert listed.stdout.count("cbsa1") == 1 and "CBP" in listed.stdout
    apps = tmp_path / "apps.csv"
    apps.write_text(
        "id,program,application_type,surname,given_names,date_of_birth,citizenship,email,"
        "applied_on,language,time_zone\n"
        "NX-0001,NEXUS,new,A,B,1980-01-01,CAN,a@example.org,2022-01-01,fr,America/Halifax\n"
        "NX-0002,NEXUS,new,A,B,1980-01-01,CAN,a@example.org,2022-01-02,,\n"
        "NX-0003,NEXUS,new,A,B,1980-01-01,CAN,a@example.org,2022-01-03,en,\n",
        encoding="utf-8",
    )
    assert nexus_interview("--data-dir", data, "applications", "import", str(apps)).returncode == 0
    dry = nexus_interview("--data-dir", data, "schedule", "--days", "3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would book 2 joint appointment(s)" in dry.stdout and "NX-0002" in dry.stdout
    done = nexus_interview("--data-dir", data, "schedule", "--days", "3")
    assert "3 pending application(s); booked 2 joint appointment(s)" in done.stdout
    assert "/i/" not in done.stdout + done.stderr  # no link is printed
    again = nexus_interview("--data-dir", data, "schedule", "--days", "3")
    assert "1 pending application(s); booked 0" in again.stdout
    staffing = nexus_interview("--data-dir", data, "staffing", "--day", starts.date().isoformat())
    assert staffing.returncode == 0, staffing.stderr
    assert re.search(r"CBSA\s*│\s*2\s*│\s*2\s*│\s*0", staffing.stdout), staffing.stdout


async def test_two_runs_with_different_plans_never_book_one_application_twice(
    store: Store, settings: Settings
) -> None:
    """Two runs plan at the same moment (the console and the CLI at once) and their plans
    hold different slots: only the application's status, checked as each books, can
    stop the second."""
    await staffed_monday(store)
    await add_applications(store, application("NX-0001"))
    now = MONDAY - timedelta(days=1)
    [planned] = (
        await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT, dry_run=True)
    ).appointments
    later = timedelta(minutes=30)  # the other run's plan: the same officers, later slots
    other = replace(
        planned,
        starts=planned.starts + later,
        ends=planned.ends + later,
        holds=tuple(
            replace(h, starts=h.starts + later, ends=h.ends + later) for h in planned.holds
        ),
    )
    plans = [[planned], [other]]

    first = await appointments.book(store, settings, plans[0][0], "schedule")
    second = await appointments.book(store, settings, plans[1][0], "schedule")

    assert first is not None and second is None
    booked = [i for i in await store.interviews.all() if i.state == "scheduled"]
    assert [i.id for i in booked] == [first]
    holds = await store.rosters.holds(MONDAY, MONDAY + timedelta(hours=1))
    assert {(h.officer_id, h.starts) for h in holds} == {
        (h.officer_id, h.starts) for h in plans[0][0].holds
    }  # the refused booking let its slots go


async def test_schedule_gives_notice_booking_nothing_sooner_than_the_notice_hours(
    store: Store, settings: Settings
) -> None:
    await staffed_monday(store)
    await add_applications(store, *(application(f"NX-000{n}") for n in range(1, 6)))
    now = MONDAY - timedelta(hours=23, minutes=30)  # the first two slots are within a day

    run = await appointments.schedule(store, settings, now, 3, InterviewMode.JOINT)

    assert settings.schedule_notice_hours == 24
    assert [a.starts for a in run.appointments] == [
        MONDAY + timedelta(minutes=30),
        MONDAY + timedelta(minutes=45),
    ]
