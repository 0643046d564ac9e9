"""An applicant moves or cancels a booked appointment from their link, through the real
server: free times offered, the move kept to the operator's rules, a repeat changing
nothing twice, and the page in French too."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.names import Agency
from common.secret import Secret
from server import appointments, rosters
from server.auth import new_invitation_token
from server.types import ApplicationStatus, InterviewMode, iso

from .fakes import Client, World, add_applications, application


@dataclass
class Booked:
    interview_id: str
    token: str
    applicant: Client
    first_slot: datetime


async def booked(world: World, hours_ahead: int = 48) -> Booked:
    """One application booked into the first of four slots of a CBSA and a CBP officer."""
    for username, agency in (("cbsa.one", Agency.CBSA), ("cbp.one", Agency.CBP)):
        await world.add_officer(username, agency)
    starts = (world.clock() + timedelta(hours=hours_ahead)).replace(minute=0, second=0)
    for username in ("cbsa.one", "cbp.one"):
        await rosters.add_window(world.store, username, starts, starts + timedelta(hours=1))
    await add_applications(
        world.store, application("NX-0001", language="fr", time_zone="America/Vancouver")
    )
    tokens: list[Secret[str]] = []

    def mint() -> Secret[str]:
        tokens.append(new_invitation_token())
        return tokens[-1]

    # booked with no notice period: some tests need an appointment sooner than it allows
    settings = world.settings.replace(schedule_notice_hours=0)
    run = await appointments.schedule(
        world.store, settings, world.clock(), 5, InterviewMode.JOINT, mint=mint
    )
    [appointment] = run.appointments
    assert appointment.starts == starts
    [interview] = await world.store.interviews.all()
    return Booked(interview.id, tokens[0].reveal(), await world.client(), starts)


async def post(
    world: World, booked: Booked, action: str, fields: dict[str, str]
) -> tuple[int, str]:
    csrf = await world.csrf(booked.applicant)
    response = await booked.applicant.post(
        f"/i/{booked.token}/{action}", data={"csrf_token": csrf, **fields}
    )
    return response.status, await response.text()


def offered(page: str) -> list[str]:
    return re.findall(r'name="starts" value="([^"]+)"', page)


async def test_the_applicant_moves_the_appointment_once_and_a_repeat_changes_nothing(
    world: World,
) -> None:
    booking = await booked(world)
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    assert "America/Vancouver" in page  # the applicant's own time zone
    times = offered(page)
    assert len(times) == 3 and booking.first_slot.isoformat() not in times
    status, body = await post(world, booking, "appointment", {"starts": times[1]})
    assert status == 200 and "Your appointment has been moved." in body
    interview = await world.store.interviews.get(booking.interview_id)
    assert interview.window_start == datetime.fromisoformat(times[1])
    status, _ = await post(world, booking, "appointment", {"starts": times[1]})
    assert status == 200
    appointment = await world.store.rosters.appointment_of(booking.interview_id)
    assert appointment is not None and appointment.reschedules == 1
    # the move is in the interview's history, once, with the times it went from and to
    moves = await world.store.events.for_interview(booking.interview_id)
    assert [(e.kind, e.seat, e.detail) for e in moves if e.kind == "rescheduled"] == [
        (
            "rescheduled",
            "applicant",
            {"from": iso(booking.first_slot), "to": iso(datetime.fromisoformat(times[1]))},
        )
    ]
    # The time given up is free again; the time taken is not offered.
    again = offered(await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text())
    assert booking.first_slot.isoformat() in again and times[1] not in again


async def test_two_tabs_moving_at_once_move_the_appointment_once(world: World) -> None:
    booking = await booked(world)
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    times = offered(page)

    answers = await asyncio.gather(
        post(world, booking, "appointment", {"starts": times[1]}),
        post(world, booking, "appointment", {"starts": times[2]}),
    )

    assert all(status < 500 for status, _ in answers), answers
    assert sum("Your appointment has been moved." in body for _, body in answers) >= 1
    appointment = await world.store.rosters.appointment_of(booking.interview_id)
    assert appointment is not None and appointment.reschedules == 1
    events = await world.store.events.for_interview(booking.interview_id)
    [moved] = [e for e in events if e.kind == "rescheduled"]
    # the appointment is where its one move took it, and the other time is still free
    interview = await world.store.interviews.get(booking.interview_id)
    assert iso(interview.window_start) == moved.detail["to"]
    again = offered(await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text())
    kept = datetime.fromisoformat(times[1]) == interview.window_start
    assert (times[2] if kept else times[1]) in again
    assert booking.first_slot.isoformat() in again


async def test_a_time_that_is_not_free_or_not_a_time_is_refused_and_changes_nothing(
    world: World,
) -> None:
    booking = await booked(world)
    taken = (booking.first_slot + timedelta(hours=5)).isoformat()
    status, body = await post(world, booking, "appointment", {"starts": taken})
    assert status == 409 and "that time is not free" in body
    status, body = await post(world, booking, "appointment", {"starts": "tomorrow"})
    assert status == 400 and "choose one of the times offered" in body
    interview = await world.store.interviews.get(booking.interview_id)
    assert interview.window_start == booking.first_slot


async def test_moves_are_limited_by_the_operators_rules(world: World) -> None:
    booking = await booked(world, hours_ahead=20)  # within the 24 hours before it
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    # (the application is in French: so are its pages)
    assert "peut être modifié jusqu'à 24 heures avant" in html.unescape(page)
    assert not offered(page)
    status, body = await post(world, booking, "cancel", {"confirm": "yes"})
    assert status == 409 and "24 heures" in body
    assert (await world.store.applications.get("NX-0001")).status is ApplicationStatus.SCHEDULED


async def test_cancelling_returns_the_application_to_the_queue_once(world: World) -> None:
    booking = await booked(world)
    for _ in range(2):  # a double click
        status, body = await post(world, booking, "cancel", {"confirm": "yes"})
        assert status == 200 and "Your appointment is cancelled" in body
    assert (await world.store.applications.get("NX-0001")).status is ApplicationStatus.PENDING
    history = await world.store.applications.history("NX-0001")
    assert [change.to_status for change in history].count(ApplicationStatus.PENDING) == 2
    # Its slots are free for the next run.
    assert (
        await world.store.rosters.holds(booking.first_slot, booking.first_slot + timedelta(hours=1))
        == []
    )


async def test_the_page_speaks_french(world: World) -> None:
    booking = await booked(world)
    csrf = await world.csrf(booking.applicant)
    await booking.applicant.post(
        "/api/language", json={"language": "fr"}, headers={"X-CSRF-Token": csrf}
    )
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    assert "Modifier ou annuler votre rendez-vous" in page and "Annuler mon rendez-vous" in page
