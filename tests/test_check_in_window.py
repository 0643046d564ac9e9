"""The invitation link and the interview's window: the applicant sees when it is, and
check-in (the date of birth and everything after) opens a set time before it starts."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestServer

from server import operator
from server.app import create_app
from server.settings import Settings
from server.types import InterviewMode

from .fakes import FakeClock, World, add_applications, application, fast_passwords

DOB = "1980-05-17"


async def invited(world: World, starts_in: timedelta) -> tuple[str, str]:
    """NX-0001 invited for a window that starts ``starts_in`` from now; (id, token)."""
    await add_applications(world.store, application("NX-0001"))
    invitation = await operator.invite(
        world.store, world.settings, "NX-0001", InterviewMode.JOINT, world.clock() + starts_in, 8
    )
    return invitation.interview_id, invitation.link.reveal().rsplit("/", 1)[1]


async def test_a_link_for_a_window_weeks_ahead_says_when_to_come_back(world: World) -> None:
    interview_id, token = await invited(world, timedelta(days=19))
    window = await world.store.interviews.get(interview_id)
    opens = window.window_start - timedelta(minutes=15)
    client = await world.client()
    page = await client.get(f"/i/{token}")
    assert page.status == 200
    html = await page.text()
    assert "It is too early to check in" in html
    assert f'data-time-opens="{opens.isoformat()}"' in html
    assert opens.strftime("%Y-%m-%d %H:%M UTC") in html  # for a page without scripts
    assert f'data-time-start="{window.window_start.isoformat()}"' in html
    assert 'name="date_of_birth"' not in html


async def test_the_date_of_birth_is_not_taken_before_check_in_opens(world: World) -> None:
    interview_id, token = await invited(world, timedelta(days=19))
    client = await world.client()
    refused = await world.confirm_dob(client, token, DOB)
    assert refused.status == 409
    assert "It is too early to check in" in await refused.text()
    interview = await world.store.interviews.get(interview_id)
    assert not interview.dob_confirmed and interview.dob_failures == 0
    assert (await client.get("/api/applicant/interview")).status == 401  # no check-in


async def test_check_in_opens_the_set_time_before_the_window(world: World) -> None:
    _, token = await invited(world, timedelta(minutes=16))
    client = await world.client()
    assert "It is too early" in await (await client.get(f"/i/{token}")).text()
    world.clock.advance(60)  # fifteen minutes before: check-in is open
    page = await client.get(f"/i/{token}")
    html = await page.text()
    assert page.status == 200 and 'name="date_of_birth"' in html
    assert "Your interview is scheduled between" in html
    assert (await world.confirm_dob(client, token, DOB)).status == 303


async def test_the_time_check_in_opens_is_a_setting(settings: Settings, clock: FakeClock) -> None:
    hour_before = settings.replace(check_in_opens_minutes=60)
    server = TestServer(create_app(hour_before, clock, fast_passwords()), host="127.0.0.1")
    await server.start_server()
    world = World(server, hour_before, clock, fast_passwords())
    try:
        _, token = await invited(world, timedelta(minutes=59))
        page = await (await world.client()).get(f"/i/{token}")
        assert 'name="date_of_birth"' in await page.text()
    finally:
        for client in world.clients:
            await client.close()
        await server.close()
