"""The applicant's pages and API through the real server: a finished interview's link says
the interview is complete (a never-held one still expires), consent given twice is recorded
once, and the applicant's own API says nothing about the officers' decisions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from common.names import Agency, Seat
from server.appkeys import LIVES
from signalling import messages as m

from .calls import Seated, join_and_call, officer_who_took, open_socket
from .fakes import Client, World, add_applications, application
from .media import SyntheticParticipant

CONSENT = {"text_version": "2026-11-01", "language": "en"}
COMPLETE = "Your interview is complete"
EXPIRED = "this interview link has expired"


@dataclass
class Interview:
    """An invited interview whose applicant confirmed the date of birth."""

    world: World
    interview_id: str
    token: str
    applicant: Client
    officers: dict[Agency, Client]
    sockets: dict[Seat, Seated]

    async def consent(self) -> tuple[int, object]:
        csrf = await self.world.csrf(self.applicant)
        response = await self.applicant.post(
            "/api/applicant/consent", json=CONSENT, headers={"X-CSRF-Token": csrf}
        )
        return response.status, await response.json()

    async def decide(self, agency: Agency) -> None:
        client = self.officers[agency]
        response = await client.post(
            f"/api/interviews/{self.interview_id}/decision",
            json={
                "verdict": "refer",
                "reason_codes": [f"{'CA' if agency is Agency.CBSA else 'US'}-OTH"],
                "notes": "",
            },
            headers={"X-CSRF-Token": await self.world.csrf(client)},
        )
        assert response.status == 201, await response.text()

    async def info(self) -> dict[str, object]:
        response = await self.applicant.get("/api/applicant/interview")
        assert response.status == 200, await response.text()
        body: dict[str, object] = await response.json()
        return body

    @property
    def record(self) -> Path:
        return self.world.settings.data_dir / "records" / self.interview_id / "events.jsonl"

    def recorded(self, kind: str) -> list[dict[str, object]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [event for event in map(json.loads, lines) if event.get("kind") == kind]


async def checked_in(world: World) -> Interview:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    applicant = await world.client()
    assert (await world.confirm_dob(applicant, token, "1980-05-17")).status == 303
    return Interview(world, interview_id, token, applicant, {}, {})


@asynccontextmanager
async def in_call(world: World) -> AsyncIterator[Interview]:
    """A consented interview whose applicant waited and whose two officers took it, all
    three in the call with media (their joins stored: officers may decide)."""
    interview = await checked_in(world)
    assert (await interview.consent())[0] == 201
    applicant = await open_socket(world, interview.applicant)
    await applicant.ws.send_str(m.encode(m.Ready(interview_id=interview.interview_id)))
    await applicant.expect(m.Waiting)
    interview.sockets[Seat.APPLICANT] = applicant
    for agency in Agency:
        client = await officer_who_took(world, interview.interview_id, agency)
        interview.officers[agency] = client
        interview.sockets[Seat.of(agency)] = await open_socket(world, client)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        for seat in Seat:
            await join_and_call(interview.sockets[seat], interview.interview_id, people[seat])
        await world.server.app[LIVES].drain()
        yield interview
    finally:
        for person in people.values():
            await person.close()


async def finished(world: World, decided: bool = True) -> Interview:
    """An interview held in full: everyone joined, the officers decided (unless not
    ``decided``), and the CBSA officer ended it."""
    async with in_call(world) as interview:
        if decided:
            for agency in Agency:
                await interview.decide(agency)
        await interview.sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
        await interview.sockets[Seat.APPLICANT].expect(m.Ended)
    assert (await interview.info())["next"] == "done"
    return interview


# --- after the interview: the link says it is complete ------------------------------------


async def test_the_link_opened_the_moment_the_applicant_hears_the_end_says_complete(
    world: World,
) -> None:
    """The call's participants hear of its end before it is journaled and stored (their
    media is sealed first); a page read then waits for the end to be stored."""
    async with in_call(world) as interview:
        for agency in Agency:
            await interview.decide(agency)
        await interview.sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
        await interview.sockets[Seat.APPLICANT].expect(m.Ended)
        page, info = await asyncio.gather(
            (await world.client()).get(f"/i/{interview.token}"), interview.info()
        )
        assert COMPLETE in await page.text()
        assert info["next"] == "done"


async def test_a_decided_interviews_link_says_the_interview_is_complete(world: World) -> None:
    interview = await finished(world)
    browser = await world.client()
    page = await browser.get(f"/i/{interview.token}")
    text = await page.text()
    assert page.status == 200, text
    assert COMPLETE in text and "Trusted Traveler Programs account" in text
    assert EXPIRED not in text and 'id="date_of_birth"' not in text


async def test_an_ended_interview_awaiting_decisions_also_says_complete(world: World) -> None:
    interview = await finished(world, decided=False)
    page = await (await world.client()).get(f"/i/{interview.token}")
    assert page.status == 200 and COMPLETE in await page.text()


async def test_the_complete_page_speaks_french(world: World) -> None:
    interview = await finished(world)
    browser = await world.client()
    csrf = {"X-CSRF-Token": await world.csrf(browser)}
    await browser.post("/api/language", json={"language": "fr"}, headers=csrf)
    page = await browser.get(f"/i/{interview.token}")
    text = await page.text()
    assert page.status == 200
    assert "Votre entrevue est terminée" in text and "voyageurs dignes de confiance" in text


async def test_a_finished_interview_stays_complete_after_its_window_closes(world: World) -> None:
    interview = await finished(world)
    world.clock.advance(9 * 3600)
    page = await (await world.client()).get(f"/i/{interview.token}")
    assert page.status == 200 and COMPLETE in await page.text()


async def test_the_date_of_birth_sent_again_after_the_interview_says_complete(
    world: World,
) -> None:
    interview = await finished(world)
    browser = await world.client()
    response = await browser.post(
        f"/i/{interview.token}",
        data={"csrf_token": await world.csrf(browser), "date_of_birth": "1980-05-17"},
        allow_redirects=False,
    )
    assert response.status == 200 and COMPLETE in await response.text()


async def test_a_checked_in_interview_never_held_still_expires_with_its_window(
    world: World,
) -> None:
    interview = await checked_in(world)
    world.clock.advance(9 * 3600)
    page = await (await world.client()).get(f"/i/{interview.token}")
    assert page.status == 410 and EXPIRED in await page.text()


async def test_the_signed_in_applicant_is_sent_to_the_completion_screen(world: World) -> None:
    interview = await finished(world)
    page = await interview.applicant.get("/interview")
    text = await page.text()
    assert page.status == 200 and COMPLETE in text
    assert "applicant.js" not in text  # no call page, no camera: just the message
    assert (await interview.info())["next"] == "done"


# --- consent: a second click changes nothing ------------------------------------------------


async def test_consent_given_twice_answers_alike_and_is_recorded_once(world: World) -> None:
    interview = await checked_in(world)
    first, second = await interview.consent(), await interview.consent()
    assert first == second == (201, {"recorded": True})
    stored = await world.store.events.for_interview(interview.interview_id)
    assert [event.kind for event in stored].count("consent") == 1
    assert len(interview.recorded("consent")) == 1


async def test_consent_sent_twice_at_once_is_recorded_once(world: World) -> None:
    interview = await checked_in(world)
    answers = await asyncio.gather(*(interview.consent() for _ in range(8)))
    assert all(answer == (201, {"recorded": True}) for answer in answers)
    stored = await world.store.events.for_interview(interview.interview_id)
    assert [event.kind for event in stored].count("consent") == 1
    assert len(interview.recorded("consent")) == 1


async def test_consent_in_another_language_later_is_not_recorded_again(world: World) -> None:
    interview = await checked_in(world)
    assert (await interview.consent())[0] == 201
    csrf = await world.csrf(interview.applicant)
    again = await interview.applicant.post(
        "/api/applicant/consent",
        json={**CONSENT, "language": "fr"},
        headers={"X-CSRF-Token": csrf},
    )
    assert again.status == 201 and await again.json() == {"recorded": True}
    assert [e["language"] for e in interview.recorded("consent")] == ["en"]


# --- the applicant's API says nothing about decisions ----------------------------------------


async def test_the_applicants_api_is_the_same_before_and_after_an_agency_decides(
    world: World,
) -> None:
    async with in_call(world) as interview:
        before = await interview.info()
        await interview.decide(Agency.CBSA)
        after = await interview.info()
    assert before == after
    assert not {"decided", "decisions", "state", "status"} & set(after)
    assert after["next"] == "join" and after["consented"] is True
