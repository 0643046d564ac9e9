"""The applicant's whole flow in Firefox: Debian's firefox-esr, driven over WebDriver BiDi
by tests/firefox/applicant.mjs (tests/firefox_driver.py), against a real
`nexus-interview serve`. Both officers are aiortc participants on the officer socket: they
take the interview, join the call once the applicant is in it, and one of them ends it.

The date of birth is typed into Firefox's own date field, digit by digit in the order
that field shows: month/day/year in an English (en-US) Firefox, day/month/year in a
French one (Debian's French language pack, asked for as a French speaker's Firefox is).

Firefox also trusts a test CA imported into its profile's NSS database, which the relay
tests need for pages and TURN over TLS with test certificates.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web
from yarl import URL

from common.names import Agency, Kind, Seat
from server.i18n import Catalogs
from web import LOCALE

from ..certificates import Issued, TestCA
from ..firefox_driver import firefox
from ..media import SyntheticParticipant, wait_for
from ..served import Browser, Scene, free_port, make_scenes, password, serve, stop, up

OFFICERS = (Seat.CBSA, Seat.CBP)
FRAMES = 30  # a second of the applicant's video, at the rate Firefox's fake camera sends
DATE_OF_BIRTH = "1980-05-17"  # the application's (tests/fakes.py)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Scene]:
    """A real server (media in its process) with one invitation and its two officers."""
    (scene,) = await make_scenes(tmp_path)
    server = serve(scene.settings, media_workers="0")
    try:
        await up(scene.settings, server)
        yield scene
    finally:
        stop(server)


async def _officers_take(scene: Scene) -> dict[Seat, Browser]:
    """Both officers sign in and take the interview: the call waits for the applicant."""
    browsers = {}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        browser = browsers[seat] = Browser(URL(scene.settings.public_url))
        signed_in = await browser.form(
            "/login",
            {
                "username": f"{agency.lower()}.one",
                "password": password(agency).reveal(),
                "code": pyotp.TOTP(scene.totp[agency]).now(),
            },
        )
        assert signed_in == 303
        taken, body = await browser.post(f"/api/interviews/{scene.interview_id}/take", {})
        assert taken == 200, body
    return browsers


def _from_applicant(people: dict[Seat, SyntheticParticipant], kind: Kind) -> dict[Seat, int]:
    return {seat: person.got(Seat.APPLICANT, kind).frames for seat, person in people.items()}


def _reached(people: dict[Seat, SyntheticParticipant], wanted: dict[Seat, int]) -> bool:
    return all(n >= wanted[seat] for seat, n in _from_applicant(people, Kind.VIDEO).items())


@dataclass
class Interview:
    events: dict[str, dict[str, Any]]  # the driver's events, by step
    video: list[dict[Seat, int]]  # frames of the applicant's video each officer had, twice
    audio: list[dict[Seat, int]]


async def _interview_in_firefox(scene: Scene, **parameters: Any) -> Interview:
    """The applicant in Firefox from the invitation link to the end of the call, which
    the CBSA officer ends once both officers receive her video and audio."""
    browsers = await _officers_take(scene)
    people = {seat: SyntheticParticipant(seat) for seat in OFFICERS}
    video: list[dict[Seat, int]] = []
    audio: list[dict[Seat, int]] = []
    try:
        async with firefox(
            "applicant.mjs", base=scene.settings.public_url, token=scene.token, **parameters
        ) as driver:
            await driver.until("call")
            for seat, browser in browsers.items():
                await browser.call(scene.interview_id, people[seat])
            await driver.until("in-call")
            # the applicant's media keeps coming (a second more each time), not one burst
            wanted = dict.fromkeys(OFFICERS, FRAMES)
            for _ in range(2):
                await wait_for(functools.partial(_reached, people, wanted), within=60)
                video.append(_from_applicant(people, Kind.VIDEO))
                audio.append(_from_applicant(people, Kind.AUDIO))
                wanted = {seat: frames + FRAMES for seat, frames in video[-1].items()}
            await browsers[Seat.CBSA].end()
            events = await driver.finish()
    finally:
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()
    return Interview({event["step"]: event for event in events}, video, audio)


def _assert_the_call_went_both_ways(interview: Interview) -> None:
    in_call = interview.events["in-call"]
    # Firefox played both officers' videos: a size, and a time that advances
    assert [(v["seat"], v["width"] > 0, v["advanced"]) for v in in_call["videos"]] == [
        ("cbsa", True, True),
        ("cbp", True, True),
    ]
    # straight to the server, which offers no relay here
    assert in_call["selected"]["policy"] == "all"
    assert in_call["selected"]["type"] == "host", in_call["selected"]
    # both officers received the applicant's video and audio, more and more of it
    first, second = interview.video
    for seat in OFFICERS:
        assert FRAMES <= first[seat] < second[seat], interview.video
        assert 0 < interview.audio[0][seat] < interview.audio[1][seat], interview.audio


@pytest.mark.timeout(300)
async def test_an_applicant_in_firefox_checks_in_consents_and_has_a_call_with_both_officers(
    served: Scene,
) -> None:
    interview = await _interview_in_firefox(
        served, language="en", dateOfBirth=DATE_OF_BIRTH, typed="05171980"
    )
    events = interview.events

    # the device check passed in Firefox: its fake camera and microphone, and our server
    assert events["devices"]["checks"] == {
        "browser": "true",
        "camera": "true",
        "microphone": "true",
        "connection": "true",
    }
    # an en-US Firefox shows month/day/year: what was typed is exactly what was sent
    assert events["identity"]["locale"] == "en-US"
    assert events["identity"]["value"] == DATE_OF_BIRTH
    assert events["consent"] == {"step": "consent", "heading": "Consent to recording", "lang": "en"}
    _assert_the_call_went_both_ways(interview)
    assert events["done"]["heading"] == "Your interview is complete"
    assert events["done"]["pageErrors"] == [] and events["done"]["consoleErrors"] == []


@pytest.mark.timeout(300)
async def test_an_applicant_in_a_french_firefox_types_her_date_day_first_and_has_her_call_in_french(
    served: Scene,
) -> None:
    french = Catalogs(LOCALE).translator("fr")
    interview = await _interview_in_firefox(
        served,
        language="fr",
        dateOfBirth=DATE_OF_BIRTH,
        typed="17051980",
        # Firefox in French, as a French speaker installs it (Debian's language pack)
        prefs={"intl.locale.requested": "fr"},
    )
    events = interview.events

    # a French Firefox shows day/month/year: 17, 05, 1980 is the 17th of May 1980
    assert events["identity"]["locale"].startswith("fr")
    assert events["identity"]["value"] == DATE_OF_BIRTH
    assert events["consent"] == {
        "step": "consent",
        "heading": "Consentement à l'enregistrement",
        "lang": "fr",
    }
    _assert_the_call_went_both_ways(interview)
    assert events["done"]["heading"] == french("Your interview is complete")
    assert events["done"]["heading"] != "Your interview is complete"
    assert events["done"]["pageErrors"] == [] and events["done"]["consoleErrors"] == []


async def _https_page(issued: Issued, port: int, host: str = "127.0.0.1") -> web.AppRunner:
    """A page over HTTPS on ``host`` with ``issued``'s certificate."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<title>NEXUS test page</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner


async def _opened(urls: list[str], **parameters: Any) -> list[tuple[str, str]]:
    """Each URL as Firefox took it: ("opened", title) or ("refused", why)."""
    async with firefox("open_pages.mjs", urls=urls, **parameters) as driver:
        events = await driver.finish()
    return [
        (event["step"], event.get("title") or event["reason"])
        for event in events
        if event["step"] in ("opened", "refused")
    ]


async def test_firefox_trusts_the_test_ca_added_to_its_profile_and_no_other(
    tmp_path: Path,
) -> None:
    ours, other = TestCA.create(tmp_path / "ours"), TestCA.create(tmp_path / "other", "Other CA")
    ports = free_port(), free_port()
    runners = [
        await _https_page(ours.issue("ours", "localhost", "127.0.0.1"), ports[0]),
        await _https_page(other.issue("other", "localhost", "127.0.0.1"), ports[1]),
    ]
    urls = [f"https://localhost:{port}/" for port in ports]
    try:
        trusting = await _opened(urls, caFile=str(ours.cert))
        plain = await _opened(urls[:1])
    finally:
        for runner in runners:
            await runner.cleanup()

    # with our CA in its profile, Firefox shows the page its certificate signs...
    assert trusting[0] == ("opened", "NEXUS test page")
    # ...and not one another CA signs,
    assert trusting[1] == ("refused", "SEC_ERROR_UNKNOWN_ISSUER"), trusting
    # nor, without the import, ours: the trust is the profile's, not a switch in Firefox
    assert plain == [("refused", "SEC_ERROR_UNKNOWN_ISSUER")], plain
