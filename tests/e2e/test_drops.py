"""Empty seats and drops on an officer's tiles, in real Chromium: a seat nobody has joined
says "not connected", and keeps saying it once its (empty) media slot has arrived; an
applicant who closes the tab is "not connected, reconnecting…" within seconds, in English
and in French, and "not connected" again once the grace period is over."""

from __future__ import annotations

from functools import partial

import pytest
from playwright.async_api import Browser, expect

from common.names import Agency, RoomId, Seat
from server.appkeys import LIVES, ROOMS
from server.settings import Settings

from ..calls import join_and_call, open_socket
from ..fakes import World, add_applications, application
from ..media import SyntheticParticipant, wait_for
from .pages import check_in, consent, screen, sign_in_staff, videos_playing
from .test_interview import report

GRACE = 8  # seconds: time to read the drop in both languages before it becomes `left`
SEEN_WITHIN_MS = 5_000
PRESENCE = {"join", "drop", "rejoin", "leave", "left"}  # the room's events, not consent's


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(reconnect_grace_seconds=GRACE)


async def test_an_empty_seat_and_a_closed_tab_show_as_not_connected_on_the_officers_tile(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    errors: list[str] = []
    # the CBP officer: an aiortc participant, seated through the API and a socket
    cbp_client = await world.client()
    await world.sign_in(cbp_client, await world.add_officer("cbp.one", Agency.CBP))
    taken = await cbp_client.post(
        f"/api/interviews/{interview_id}/take",
        headers={"X-CSRF-Token": await world.csrf(cbp_client)},
    )
    assert taken.status == 200
    cbp = SyntheticParticipant(Seat.CBP)
    # the CBSA officer, in Chromium, takes the interview before the applicant is there
    cbsa = await (await browser.new_context()).new_page()
    cbsa.on("pageerror", partial(report, errors, "cbsa"))
    await sign_in_staff(cbsa, world, await world.add_officer("cbsa.one", Agency.CBSA))
    await cbsa.get_by_role("button", name="Take").click()
    await expect(cbsa.locator("#call-view")).to_be_visible()
    try:
        rooms = world.server.app[ROOMS]
        # the console's socket joins (which places the call) soon after its view shows
        await wait_for(lambda: rooms.current(RoomId(interview_id)) is not None)
        room = rooms.current(RoomId(interview_id))
        assert room is not None
        await wait_for(lambda: Seat.CBSA in room.present)  # then CBP's answer comes next
        await join_and_call(await open_socket(world, cbp_client), interview_id, cbp)
        await videos_playing(cbsa, ["cbp"])  # the slots, the applicant's empty one too, are in
        away = cbsa.locator('.tile[data-seat="applicant"] [data-flag=away]')
        await expect(away).to_be_visible()
        await expect(away).to_have_text("not connected")
        await expect(cbsa.locator('.tile[data-seat="cbp"] [data-flag=away]')).to_be_hidden()

        applicant = await (await browser.new_context()).new_page()
        applicant.on("pageerror", partial(report, errors, "applicant"))
        await check_in(applicant, world, token)
        await consent(applicant)
        await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
        await videos_playing(cbsa, ["applicant", "cbp"])
        await expect(away).to_be_hidden()

        await applicant.close()  # the tab is closed: no `leave`
        await expect(away).to_have_text("not connected, reconnecting…", timeout=SEEN_WITHIN_MS)
        await expect(away).to_be_visible()
        await screen(cbsa, "officer-5-applicant-dropped")
        await cbsa.locator("#language-form button[value=fr]").click()
        await expect(away).to_have_text("non connecté, reconnexion…")
        # the grace period is over: the seat is empty again
        await expect(away).to_have_text("non connecté", timeout=(GRACE + 5) * 1000)
        await expect(away).to_be_visible()
        await world.server.app[LIVES].drain()
        events = await world.store.events.for_interview(interview_id)
        seated = [e.kind for e in events if e.seat == "applicant" and e.kind in PRESENCE]
        assert seated == ["join", "drop", "left"]
    finally:
        await cbp.close()
    assert errors == []
