"""A booking is all or nothing, on a real SQLite store: its slots, its interview, its
appointment and its e-mails are one transaction, and so is the no-show rule's record of
what it did with what it did. A write is made to fail by a trigger in the real database
(the way a full disk or a constraint would), not by replacing any code."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from common.errors import ImportRejected
from server import appointments, rosters
from server.scheduling import Appointment
from server.settings import Settings
from server.store import Store
from server.types import ApplicationStatus, InterviewMode

from .fakes import add_applications, application
from .test_rosters import MONDAY, no_show, officers, staffed_monday


async def fail_inserts_into(store: Store, table: str) -> None:
    async with store.database.transaction() as db:
        await db.execute(
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
        )


async def let_inserts_into(store: Store, table: str) -> None:
    async with store.database.transaction() as db:
        await db.execute(f"DROP TRIGGER fail_{table}")


async def rows(store: Store, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"  # noqa: S608 - the test's own table names
    async with store.database.transaction() as db:
        [(count,)] = list(await db.execute_fetchall(sql))
    return int(count)


async def one_planned(store: Store, settings: Settings) -> Appointment:
    """NX-0001's appointment on a staffed Monday, planned (a dry run) and not booked."""
    await staffed_monday(store)
    await add_applications(store, application("NX-0001"))
    [planned] = (
        await appointments.schedule(
            store, settings, MONDAY - timedelta(days=1), 3, InterviewMode.JOINT, dry_run=True
        )
    ).appointments
    return planned


async def test_a_booking_whose_e_mail_cannot_be_queued_books_nothing(
    store: Store, settings: Settings
) -> None:
    settings = settings.replace(mail_from="interviews@nexus.example")
    planned = await one_planned(store, settings)
    await fail_inserts_into(store, "invitations")

    with pytest.raises(sqlite3.IntegrityError, match="the disk is full"):
        await appointments.book(store, settings, planned, "schedule")

    assert [await rows(store, t) for t in ("appointments", "slot_holds", "interviews")] == [0] * 3
    assert (await store.applications.get("NX-0001")).status is ApplicationStatus.PENDING
    await let_inserts_into(store, "invitations")
    interview_id = await appointments.book(store, settings, planned, "schedule")
    assert interview_id is not None  # the slots it would have held are free
    queued = {(i.interview_id, i.kind) for i in await store.invitations.listed(None, 10, 0)}
    assert (interview_id, "invitation") in queued


async def test_a_booking_refused_by_the_applications_status_holds_no_slot(
    store: Store, settings: Settings
) -> None:
    planned = await one_planned(store, settings)
    assert await appointments.book(store, settings, planned, "schedule") is not None
    again = await appointments.book(store, settings, planned, "schedule")  # no longer pending

    assert again is None
    assert await rows(store, "appointments") == 1
    assert await rows(store, "slot_holds") == len(planned.holds)


async def test_a_no_show_follow_up_that_fails_part_way_is_done_by_the_next_sweep(
    store: Store, settings: Settings
) -> None:
    settings = settings.replace(no_show_rule="re-invite", schedule_notice_hours=0)
    await staffed_monday(store)
    await add_applications(store, application("NX-0001"))
    await appointments.schedule(store, settings, MONDAY - timedelta(days=1), 3, InterviewMode.JOINT)
    [missed] = await store.interviews.all()
    await no_show(store, missed.id)
    later = MONDAY + timedelta(minutes=20)
    await fail_inserts_into(store, "interviews")

    with pytest.raises(sqlite3.IntegrityError):
        await appointments.follow_up_no_shows(store, settings, later)

    assert await rows(store, "no_show_follow_ups") == 0  # not recorded as dealt with
    await let_inserts_into(store, "interviews")
    assert await appointments.follow_up_no_shows(store, settings, later) == {"re_invited": 1}
    assert await appointments.follow_up_no_shows(store, settings, later) == {}
    assert len(await store.interviews.all()) == 2
    assert (await store.applications.get("NX-0001")).status is ApplicationStatus.SCHEDULED


def roster_file(path: Path, *lines: str) -> Path:
    path.write_text("officer,starts,ends\n" + "".join(f"{line}\n" for line in lines))
    return path


async def test_two_roster_imports_at_once_each_add_all_their_windows_or_none(
    store: Store, tmp_path: Path
) -> None:
    """The second file's last window overlaps the first file's: whichever comes second is
    refused whole, however the two interleave."""
    await officers(store)
    days = [f"2030-01-{day:02d}" for day in range(7, 12)]
    first = roster_file(
        tmp_path / "first.csv", *(f"cbsa1,{d}T09:00-05:00,{d}T12:00-05:00" for d in days)
    )
    second = roster_file(
        tmp_path / "second.csv",
        *(f"cbp1,{d}T09:00-05:00,{d}T12:00-05:00" for d in days),
        f"cbsa1,{days[-1]}T11:00-05:00,{days[-1]}T13:00-05:00",
    )

    outcomes = await asyncio.gather(
        rosters.import_roster(store, first),
        rosters.import_roster(store, second),
        return_exceptions=True,
    )

    refused = [o for o in outcomes if isinstance(o, ImportRejected)]
    assert len(refused) == 1, outcomes
    stored = await store.rosters.windows(MONDAY - timedelta(days=1), MONDAY + timedelta(days=7))
    kept = {w.username for w in stored}
    assert kept in ({"cbsa1"}, {"cbp1", "cbsa1"})
    assert len(stored) == (5 if kept == {"cbsa1"} else 6)
