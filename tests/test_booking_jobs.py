"""Booking from the operator's console runs in the background: the form answers at once,
one run at a time, the console follows it, and its outcome (done, failed, interrupted by a
stop) goes to the operators' log under the operator who started it.

The runs are slow because the backlog is real and large (hundreds of applications, officers
rostered for all of them), not because anything is mocked."""

from __future__ import annotations

import asyncio
import html
import re
import sqlite3
from datetime import timedelta
from typing import Any

from common.names import Agency
from server import rosters
from server.appkeys import OPERATIONS
from server.settings import Settings
from server.store import Store

from .fakes import Client, FakeClock, World, add_applications, application
from .test_operator_console import office_day, operator_client, schedule_form
from .test_witnessing_wired import server

BACKLOG = 800
"""Applications in a backlog large enough that booking it takes a while."""


async def backlog(world: World, applications: int = BACKLOG, first: int = 1) -> None:
    """``applications`` pending (numbered from ``first``), and five pairs of officers
    rostered 08:00 to 18:00 on the next five days: room for a thousand joint appointments."""
    for pair in range(5):
        for agency in Agency:
            account = await world.add_officer(f"{agency.lower()}.{pair}", agency)
            for day in range(1, 6):
                starts = office_day(world, day, 8)
                await rosters.add_window(
                    world.store, account.username, starts, starts + timedelta(hours=10)
                )
    await add_applications(
        world.store, *(application(f"NX-{n:04d}") for n in range(first, first + applications))
    )


async def status(client: Client) -> dict[str, Any]:
    response = await client.get("/operator/schedule/status")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def ended(client: Client, seconds: float = 60) -> dict[str, Any]:
    """The run's status once it is no longer running, as the console's script polls it."""
    for _ in range(int(seconds / 0.05)):
        body = await status(client)
        if body["state"] != "running":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("the booking run did not end")


def job_region(page: str) -> str:
    found = re.search(r'<p id="booking-job"[^>]*data-state="(\w*)">(.*?)</p>', page, re.S)
    assert found is not None
    return f"{found[1]}: {html.unescape(found[2])}"


async def booked(store: Store) -> tuple[int, int]:
    """Interviews booked, and the applications they are for."""
    async with store.database.transaction() as db:
        rows = await db.execute_fetchall(
            "SELECT count(*), count(DISTINCT application_id) FROM interviews"
        )
    counts = next(iter(rows))
    return counts[0], counts[1]


def schedule_log(world: World) -> list[tuple[str, str, str]]:
    return [
        (op.actor, op.target, op.outcome)
        for op in world.server.app[OPERATIONS].operations()
        if op.action == "schedule"
    ]


async def test_booking_answers_at_once_and_the_console_shows_the_run_then_its_outcome(
    world: World,
) -> None:
    await backlog(world)
    client = await operator_client(world)

    assert await schedule_form(client, days="7", mode="joint") == (303, "/operator")
    running = await status(client)
    page = await (await client.get("/operator")).text()
    booked_meanwhile, _ = await booked(world.store)

    assert running["state"] == "running" and (running["days"], running["mode"]) == (7, "joint")
    assert running["started_by"] == "Operator.One"
    assert booked_meanwhile < BACKLOG  # the answer came before the run ended
    notice = re.search(r'id="notice" role="status">(.*?)</p>', page)
    assert notice is not None and notice[1].startswith("Booking the next 7 days has started")
    assert job_region(page).startswith(
        "running: Booking the next 7 days (joint), started by Operator.One at "
        f"{world.clock():%Y-%m-%d %H:%M} UTC: still running."
    )
    assert (
        'aria-live="polite"' in page and '<script type="module" src="/static/operator.js">' in page
    )

    outcome = await ended(client)
    page = await (await client.get("/operator")).text()

    assert (outcome["state"], outcome["booked"], outcome["pending"]) == ("done", BACKLOG, BACKLOG)
    assert f"{BACKLOG} of {BACKLOG} pending applications were booked" in outcome["text"]
    assert job_region(page).startswith("done: Booking the next 7 days (joint), started by Operator")
    assert await booked(world.store) == (BACKLOG, BACKLOG)
    actor = schedule_log(world)[0][0]
    assert actor.startswith("operator:")
    assert schedule_log(world) == [(actor, "7 days, joint", "done")]
    logged = world.server.app[OPERATIONS].last("schedule")
    assert logged is not None and (logged["booked"], logged["pending"]) == (BACKLOG, BACKLOG)


async def test_a_second_booking_while_one_runs_is_refused_and_books_nobody_twice(
    world: World,
) -> None:
    await backlog(world)
    client = await operator_client(world)
    other = await world.client()
    await world.sign_in(other, await world.add_operator("operator.two"))

    first = await schedule_form(client, days="7", mode="joint")
    double_click = await schedule_form(client, days="7", mode="joint")
    someone_else = await schedule_form(other, days="3", mode="two_step")
    outcome = await ended(client)

    assert first == (303, "/operator")
    for status_code, text in (double_click, someone_else):
        message = html.unescape(text)
        assert status_code == 409
        assert "a booking run started by Operator.One at " in message
        assert "is still running; nothing more was started" in message
    assert outcome["state"] == "done" and outcome["booked"] == BACKLOG
    assert await booked(world.store) == (BACKLOG, BACKLOG)
    assert [(target, outcome) for _, target, outcome in schedule_log(world)] == [
        ("", "refused"),
        ("", "refused"),
        ("7 days, joint", "done"),
    ]


async def test_a_run_the_database_refuses_shows_failed_with_its_reason(world: World) -> None:
    await backlog(world, applications=3)
    # The database itself refuses every appointment, as a broken schema or a full disk would.
    with sqlite3.connect(world.settings.database_path) as db:
        db.execute(
            "CREATE TRIGGER refuse_bookings BEFORE INSERT ON appointments"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    client = await operator_client(world)

    assert await schedule_form(client, days="7", mode="joint") == (303, "/operator")
    outcome = await ended(client)
    page = await (await client.get("/operator")).text()

    assert outcome["state"] == "failed"
    assert job_region(page).startswith(
        "failed: Booking the next 7 days (joint), started by Operator.One at "
    )
    assert ": IntegrityError. What was booked before stays booked" in job_region(page)
    assert await booked(world.store) == (0, 0)  # the booking rolled back whole
    assert [outcome for _, _, outcome in schedule_log(world)] == ["failed"]
    logged = world.server.app[OPERATIONS].last("schedule")
    assert logged is not None and logged["reason"] == "IntegrityError"
    assert logged["actor"].startswith("operator:")


async def test_a_run_under_way_when_the_server_stops_is_interrupted_and_logged(
    settings: Settings, clock: FakeClock
) -> None:
    async with server(settings, clock) as world:
        await backlog(world)
        client = await operator_client(world)
        assert await schedule_form(client, days="7", mode="joint") == (303, "/operator")
        assert (await status(client))["state"] == "running"
    logged = schedule_log(world)

    assert [(target, outcome) for _, target, outcome in logged] == [
        ("7 days, joint", "interrupted")
    ]
    assert logged[0][0].startswith("operator:")
    store = await Store(settings.database_path, clock).open()
    try:
        interviews, _ = await booked(store)
        pending = await store.applications.pending()
        async with store.database.transaction() as db:
            rows = await db.execute_fetchall("SELECT count(*) FROM appointments")
        appointments = next(iter(rows))[0]
    finally:
        await store.close()
    # Each booking is whole or absent: what was booked has its appointment, the rest waits.
    assert 0 <= interviews < BACKLOG
    assert appointments == interviews
    assert len(pending) + interviews == BACKLOG


async def test_the_run_status_is_the_operators_alone(world: World) -> None:
    officer, auditor, anonymous = await world.client(), await world.client(), await world.client()
    await world.sign_in(officer, await world.add_officer("cbsa.one", Agency.CBSA))
    await world.sign_in(auditor, await world.add_auditor("auditor.one"))
    operator = await operator_client(world)

    assert (await officer.get("/operator/schedule/status")).status == 403
    assert (await auditor.get("/operator/schedule/status")).status == 403
    refused = await anonymous.get("/operator/schedule/status", allow_redirects=False)
    assert refused.status == 303 and refused.headers["Location"] == "/login"
    assert await status(operator) == {"state": None, "text": ""}
