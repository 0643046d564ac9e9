"""The applicant's side in real Chromium beyond the happy path: the whole check-in in
French on a phone-sized screen (every word translated, switchable in place), the help
shown when the camera is blocked, and a reload mid-call rejoining the same interview."""

from __future__ import annotations

from playwright.async_api import Browser, Page, ViewportSize, expect

from common.names import Agency, Kind, Seat
from server.appkeys import LIVES, SOCKETS
from server.i18n import Catalogs
from web import LOCALE

from ..calls import join_and_call, officer_who_took, open_socket
from ..fakes import World, add_applications, application
from ..media import SyntheticParticipant, wait_for
from .pages import base_url, check_in, consent, screen, videos_playing

PHONE = ViewportSize(width=390, height=844)
# Message ids whose French is spelled the same on purpose.
SAME_IN_FRENCH = {"Format", "Action", "{name} ({agency})"}

UNTRANSLATED = """
(same) => [...document.querySelectorAll("[data-t]")]
  .filter((element) => element.offsetParent !== null)   // shown on screen
  .filter((element) => !same.includes(element.dataset.t))
  .filter((element) => element.textContent.trim() === element.dataset.t.trim())
  .map((element) => element.dataset.t)
"""


async def untranslated(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(UNTRANSLATED, sorted(SAME_IN_FRENCH))
    return found


async def test_the_applicant_checks_in_in_french_on_a_phone(world: World, browser: Browser) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    french = Catalogs(LOCALE).translator("fr")

    await check_in(page, world, token, language="fr", dob="1999-12-31", shots="fr-applicant")
    # the server's own error, in French
    await expect(page.get_by_role("alert")).to_have_text(
        french("that date of birth does not match; {left} tries left", left=4)
    )
    assert await untranslated(page) == []
    await page.locator("#date_of_birth").fill("1980-05-17")
    await page.locator("#step-identity button[type=submit]").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Consentement à l'enregistrement"
    )
    assert await untranslated(page) == []
    await screen(page, "fr-applicant-4-consent")

    await page.locator("#consent-give").click()  # without ticking the box
    await expect(page.locator("#consent-error")).to_have_text(
        "Cochez la case pour donner votre accord avant de continuer."
    )
    await consent(page)
    status = page.locator("#waiting-status")
    await expect(status).to_contain_text("Vous êtes numéro 1 dans la file")
    assert await untranslated(page) == []
    await screen(page, "fr-applicant-5-waiting")

    # switching language in place keeps the waiting room (and its socket) as it is
    await page.locator("#language-form button[value=en]").click()
    await expect(status).to_contain_text("You are number 1 in line")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.locator("#language-form button[value=fr]").click()
    await expect(status).to_contain_text("Vous êtes numéro 1 dans la file")

    events = await world.store.events.for_interview(interview_id)
    consents = [
        (event.detail["language"], event.detail["text_version"])
        for event in events
        if event.kind == "consent"
    ]
    assert consents == [("fr", "2026-11-01")]


async def test_a_blocked_camera_shows_help_to_allow_it(
    world: World, browser_denying_camera: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    page = await browser_denying_camera.new_page()
    await page.goto(f"{base_url(world)}/i/{token}")
    await page.locator("#step-language button[data-language='en']").click()
    help_box = page.locator("#device-help")
    await expect(help_box).to_be_visible()
    await expect(help_box).to_have_attribute("data-problem", "denied")
    await expect(help_box.locator("h3")).to_have_text(
        "Your browser is blocking the camera or microphone"
    )
    await expect(help_box).to_contain_text("click the camera icon in the address bar")
    await expect(page.locator("#devices-continue")).to_be_disabled()
    await expect(page.locator("[data-check='camera']")).to_have_attribute("data-ok", "false")
    await screen(page, "applicant-2b-camera-blocked")
    # the help follows the language too
    await page.locator("#language-form button[value=fr]").click()
    await expect(help_box.locator("h3")).to_have_text(
        "Votre navigateur bloque la caméra ou le microphone"
    )


BANNER_WATCH = """
() => {
  window.bannerShown = false;
  const banner = document.getElementById("reconnecting");
  new MutationObserver(() => { if (!banner.hidden) window.bannerShown = true; })
    .observe(banner, { attributes: true });
}
"""


async def test_an_applicant_reloading_or_cut_off_mid_call_rejoins_the_same_interview(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    officers = {}
    for agency in Agency:
        seat = Seat.of(agency)
        client = await officer_who_took(world, interview_id, agency)
        officers[seat] = (await open_socket(world, client), SyntheticParticipant(seat))
    page = await (await browser.new_context()).new_page()
    try:
        for seated, person in officers.values():
            await join_and_call(seated, interview_id, person)
        await check_in(page, world, token)
        await consent(page)
        await expect(page.locator("#step-call")).to_be_visible()
        await videos_playing(page, ["cbsa", "cbp"])

        await page.reload()  # mid-call
        await expect(page.locator("#step-call")).to_be_visible()
        await videos_playing(page, ["cbsa", "cbp"])
        cbsa = officers[Seat.CBSA][1]
        before = cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames
        await wait_for(
            lambda: cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames > before + 10,
            within=15,
        )
        await world.server.app[LIVES].drain()  # the room's reports are stored in order, later
        events = await world.store.events.for_interview(interview_id)
        applicant_events = [event.kind for event in events if event.seat == "applicant"]
        # one seat throughout: joined once, rejoined (perhaps after a drop), never left
        assert applicant_events.count("join") == 1 and "rejoin" in applicant_events
        assert not {"leave", "left"} & set(applicant_events), applicant_events

        # the connection is cut (the server drops every socket): the page says so,
        # reconnects by itself and the call carries on
        await page.evaluate(BANNER_WATCH)
        sockets = world.server.app[SOCKETS]
        for ws in list(sockets):
            await ws.close()
        for _ in range(50):
            if await page.evaluate("window.bannerShown"):
                break
            await page.wait_for_timeout(100)
        assert await page.evaluate("window.bannerShown"), "no reconnecting banner"
        await expect(page.locator("#reconnecting")).to_be_hidden(timeout=15_000)
        await videos_playing(page, ["cbsa", "cbp"])
        await world.server.app[LIVES].drain()
        events = await world.store.events.for_interview(interview_id)
        rejoins = [e for e in events if e.seat == "applicant" and e.kind == "rejoin"]
        assert len(rejoins) >= 2
    finally:
        for _, person in officers.values():
            await person.close()


async def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if await page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reaches {selector}")


async def test_the_check_in_works_with_the_keyboard_alone(world: World, browser: Browser) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    page = await (await browser.new_context(locale="en-US")).new_page()
    await page.goto(f"{base_url(world)}/i/{token}")
    await tab_to(page, "a.skip")  # the first stop skips the header
    await tab_to(page, "#step-language button[data-language='en']")
    await page.keyboard.press("Enter")
    await expect(page.locator("#devices-continue")).to_be_enabled()
    await tab_to(page, "#devices-continue")
    await page.keyboard.press("Enter")
    await expect(page.locator("#date_of_birth")).to_be_focused()
    await page.keyboard.type("05171980")  # the date field's own month/day/year order
    await page.keyboard.press("Enter")
    await expect(page.locator("#step-consent")).to_be_visible()
    await tab_to(page, "#consent-check")
    await page.keyboard.press("Space")
    await tab_to(page, "#consent-give")
    await page.keyboard.press("Enter")
    await expect(page.locator("#step-waiting")).to_be_visible()
    await expect(page.locator("#waiting-heading")).to_be_focused()
