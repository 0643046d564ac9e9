"""The applicant's waiting room in real Chromium: the scheduled window in the browser's
own time zone, an early link saying when to come back, "shortly" when officers are free,
and one place in the queue whatever the number of tabs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Page, expect

from common.names import Agency
from server import operator
from server.types import InterviewMode
from signalling import messages as m

from ..calls import Seated, open_socket
from ..fakes import Client, World, add_applications, application
from .pages import base_url, check_in, consent, screen

# Half-hour offset from UTC: a time shown in UTC or in the server's zone cannot pass.
ZONE = "Asia/Kolkata"
FRENCH_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def english_time(moment: datetime) -> str:
    """How en-CA writes the day and the time of ``moment`` in `ZONE` ("21 … 2:35")."""
    local = moment.astimezone(ZoneInfo(ZONE))
    return rf"{local:%B} {local.day}, {local.year}.*{(local.hour % 12) or 12}:{local:%M}"


def french_time(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(ZONE))
    month = FRENCH_MONTHS[local.month - 1]
    return rf"{local.day} {month} {local.year}.*0?{local.hour} h {local:%M}"


async def invited(world: World, app_id: str, starts: datetime) -> tuple[str, str]:
    await add_applications(world.store, application(app_id))
    invitation = await operator.invite(
        world.store, world.settings, app_id, InterviewMode.JOINT, starts, 8
    )
    return invitation.interview_id, invitation.link.reveal().rsplit("/", 1)[1]


async def officer_socket(world: World, username: str, agency: Agency) -> tuple[Client, Seated]:
    """An officer signed in with an open socket (the clock moves on with each sign-in)."""
    client = await world.client()
    await world.sign_in(client, await world.add_officer(username, agency))
    return client, await open_socket(world, client)


async def mark_available(socket: Seated) -> None:
    await socket.ws.send_str(m.encode(m.Available(available=True)))


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(timezone_id=ZONE)
    return await context.new_page()


async def test_the_applicant_sees_the_scheduled_window_in_their_time_zone(
    world: World, browser: Browser
) -> None:
    starts = world.clock() + timedelta(minutes=10)
    interview_id, token = await invited(world, "NX-0001", starts)
    interview = await world.store.interviews.get(interview_id)
    page = await new_page(browser)
    await page.goto(f"{base_url(world)}/i/{token}")
    window = page.locator("#schedule-window")
    await expect(window).to_have_text(re.compile(english_time(interview.window_start)))
    await expect(window).to_have_text(re.compile(english_time(interview.window_end)))
    await expect(window).not_to_contain_text("UTC")
    await page.locator("#language-form button[value=fr]").click()
    await expect(window).to_have_text(re.compile("^Votre entrevue est prévue entre le .*"))
    await expect(window).to_have_text(re.compile(french_time(interview.window_start)))

    await check_in(page, world, token)
    await consent(page)
    await expect(page.locator("#step-waiting")).to_be_visible()
    shown = page.locator("#step-waiting #schedule-window")
    await expect(shown).to_have_text(re.compile(english_time(interview.window_start)))
    await screen(page, "applicant-5b-waiting-window")


async def test_a_link_weeks_ahead_says_when_to_come_back(world: World, browser: Browser) -> None:
    starts = world.clock() + timedelta(days=19)
    _, token = await invited(world, "NX-0001", starts)
    page = await new_page(browser)
    response = await page.goto(f"{base_url(world)}/i/{token}")
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", level=2)).to_have_text("It is too early to check in")
    opens = page.locator("#check-in-opens")
    await expect(opens).to_have_text(re.compile(english_time(starts - timedelta(minutes=15))))
    await expect(opens).to_contain_text("15 minutes before your interview window")
    await expect(page.locator("#schedule-window")).to_have_text(re.compile(english_time(starts)))
    assert await page.locator("#date_of_birth").count() == 0
    await screen(page, "applicant-0-too-early")
    await page.locator("#language-form button[value=fr]").click()
    await expect(opens).to_have_text(
        re.compile(f"^L'enregistrement ouvre le .*{french_time(starts - timedelta(minutes=15))}")
    )


async def test_the_waiting_room_says_shortly_when_officers_are_free(
    world: World, browser: Browser
) -> None:
    officers = [(await officer_socket(world, f"{a}.free", a))[1] for a in Agency]
    for socket in officers:
        await mark_available(socket)
    # Officers free, and the interview's time comes in less than a minute.
    _, token = await invited(world, "NX-0001", world.clock() + timedelta(seconds=40))
    page = await new_page(browser)
    await check_in(page, world, token)
    await consent(page)
    status = page.locator("#waiting-status")
    await expect(status).to_have_text("An officer will be with you shortly.")
    await screen(page, "applicant-5c-shortly")
    world.clock.advance(40)
    await mark_available(officers[0])  # anything the lobby hears: the time has come
    await expect(page.locator("#step-call")).to_be_visible()


async def test_two_tabs_closing_one_leaves_the_other_waiting_and_in_the_queue(
    world: World, browser: Browser
) -> None:
    interview_id, token = await invited(world, "NX-0001", world.clock() - timedelta(minutes=1))
    first = await new_page(browser)
    await check_in(first, world, token)
    await consent(first)
    status = first.locator("#waiting-status")
    await expect(status).to_contain_text("You are number 1 in line")
    second = await first.context.new_page()
    await second.goto(f"{base_url(world)}/interview")
    await expect(second.locator("#waiting-status")).to_contain_text("You are number 1 in line")
    await second.close()

    cbsa_client, cbsa = await officer_socket(world, "cbsa.queue", Agency.CBSA)
    queue = await (await cbsa_client.get("/api/officer/queue")).json()
    waited = {i["id"]: i["waiting_seconds"] for i in queue["interviews"]}
    assert waited[interview_id] is not None  # still in the waiting room
    await expect(status).to_contain_text("You are number 1 in line")
    _, cbp = await officer_socket(world, "cbp.queue", Agency.CBP)
    for socket in (cbsa, cbp):
        await mark_available(socket)
    await expect(first.locator("#step-call")).to_be_visible()
