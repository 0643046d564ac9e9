"""What people see in real Chromium: names rather than principal labels (the officer's
header, the audit console's header and "who looked"); a finished interview's link saying
the interview is complete; and a double click on "I agree, continue" consenting once and
joining the call once (no false rejoin in the record)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from common.names import Agency, Seat
from signalling import messages as m

from ..audit_scene import audit_scene
from ..calls import Seated, join_and_call, officer_who_took, open_socket
from ..fakes import Client, World, add_applications, application
from ..media import SyntheticParticipant
from .pages import base_url, check_in, screen, sign_in_staff, videos_playing
from .test_audit_console import console_sign_in


async def test_the_officer_and_the_auditor_see_names_not_labels(
    recorded: tuple[World, dict[str, Path]], browser: Browser, tmp_path: Path
) -> None:
    world, keys = recorded
    officer = await world.add_officer("jane.doe", Agency.CBSA)
    page = await browser.new_page()
    await sign_in_staff(page, world, officer)
    await expect(page.locator("header .who")).to_have_text("Jane.Doe (CBSA)")

    async with audit_scene(world, keys, tmp_path) as scene:
        console = await browser.new_page(viewport={"width": 1280, "height": 900})
        await console_sign_in(console, scene, scene.auditor)
        await console.goto(scene.url(f"/sessions/{scene.interview_id}"))
        await expect(console.locator("header .who")).to_have_text("Auditor (Audit)")
        looked = console.locator("#accesses li")
        await expect(looked.first).to_contain_text("Auditor (Audit)")
        for text in await looked.all_inner_texts():
            assert "auditor:" not in text and "Auditor (Audit)" in text, text
        await screen(console, "audit-4-who-looked")


class Officers:
    """Both agencies' officers, signed in through the API, who took the interview and sit
    in its call with synthetic media."""

    def __init__(self, world: World, interview_id: str) -> None:
        self.world, self.interview_id = world, interview_id
        self.clients: dict[Agency, Client] = {}
        self.sockets: dict[Seat, Seated] = {}

    async def decide_and_end(self) -> None:
        for agency, client in self.clients.items():
            code = "CA-OTH" if agency is Agency.CBSA else "US-OTH"
            decided = await client.post(
                f"/api/interviews/{self.interview_id}/decision",
                json={"verdict": "refer", "reason_codes": [code], "notes": ""},
                headers={"X-CSRF-Token": await self.world.csrf(client)},
            )
            assert decided.status == 201, await decided.text()
        await self.sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))


@asynccontextmanager
async def officers_in_call(world: World, interview_id: str) -> AsyncIterator[Officers]:
    officers = Officers(world, interview_id)
    people: list[SyntheticParticipant] = []
    try:
        for agency in Agency:
            seat = Seat.of(agency)
            client = await officer_who_took(world, interview_id, agency)
            officers.clients[agency] = client
            officers.sockets[seat] = await open_socket(world, client)
            people.append(SyntheticParticipant(seat))
            await join_and_call(officers.sockets[seat], interview_id, people[-1])
        yield officers
    finally:
        for person in people:
            await person.close()


async def applicant_in_call(page: Page, world: World, token: str, double_click: bool) -> None:
    await check_in(page, world, token)
    await expect(page.locator("#step-consent")).to_be_visible()
    await page.locator("#consent-check").check()
    give = page.locator("#consent-give")
    await (give.dblclick() if double_click else give.click())
    await expect(page.locator("#step-call")).to_be_visible(timeout=20_000)
    await videos_playing(page, ["cbsa", "cbp"])


async def test_reopening_a_finished_interviews_link_says_it_is_complete(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    page = await browser.new_page()
    async with officers_in_call(world, interview_id) as officers:
        await applicant_in_call(page, world, token, double_click=False)
        await officers.decide_and_end()
        await expect(page.locator("#step-done")).to_be_visible(timeout=10_000)
    await expect(page.locator("#done-heading")).to_have_text("Your interview is complete")

    back = await page.go_back()  # to the invitation link the applicant came in by
    assert back is not None and back.status == 200, back and back.status
    assert page.url == f"{base_url(world)}/i/{token}"
    await expect(page.locator("h1")).to_have_text("Your interview is complete")
    await expect(page.locator("#done-text")).to_contain_text("You can close this page.")
    await screen(page, "applicant-7-link-after-the-interview")

    await page.locator("#language-form button[lang=fr]").click()
    await expect(page.locator("h1")).to_have_text("Votre entrevue est terminée")
    again = await page.goto(f"{base_url(world)}/interview")
    assert again is not None and again.status == 200
    await expect(page.locator("h1")).to_have_text("Votre entrevue est terminée")


def events_of(world: World, interview_id: str) -> list[dict[str, object]]:
    path = world.settings.data_dir / "records" / interview_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_double_click_on_consent_consents_once_and_joins_once(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    async with officers_in_call(world, interview_id) as officers:
        await applicant_in_call(page, world, token, double_click=True)
        await asyncio.sleep(3)  # time enough for a second join to have come, had there been one
        applicant_events = [
            e for e in events_of(world, interview_id) if e.get("seat") == "applicant"
        ]
        kinds = [str(e["kind"]) for e in applicant_events]
        assert kinds.count("consent") == 1, kinds
        assert kinds.count("join") == 1 and "rejoin" not in kinds, kinds
        stored = await world.store.events.for_interview(interview_id)
        assert [e.kind for e in stored].count("consent") == 1
        assert not [e for e in stored if e.kind == "rejoin"]
        await officers.sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
    assert errors == []
