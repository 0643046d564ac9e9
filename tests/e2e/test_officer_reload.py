"""An officer's console in real Chromium, across reloads and impatient clicks: the draft
decision survives a reload mid-call, the recorded decision stays on screen (their own
agency's only, until both are in), and a double click on "Capture ID still" keeps one."""

from __future__ import annotations

from functools import partial

from playwright.async_api import Browser, Page, Request, Response, expect

from common.names import Agency
from server.appkeys import STILLS

from ..fakes import World, add_applications, application
from .pages import check_in, consent, screen, sign_in_staff, videos_playing
from .test_interview import decide, report

NOTES = "Photo page looks re-laminated."
MORE = " Asked about it: renewed at the Lacolle office in 2021."


async def in_a_call(world: World, browser: Browser, errors: list[str]) -> tuple[str, Page, Page]:
    """An applicant and both officers in a joint call of NX-0001; the officers' pages."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    pages: dict[str, Page] = {}
    for seat in ("applicant", "cbsa", "cbp"):
        pages[seat] = await (await browser.new_context()).new_page()
        pages[seat].on("pageerror", partial(report, errors, seat))
    for seat, agency in (("cbsa", Agency.CBSA), ("cbp", Agency.CBP)):
        await sign_in_staff(pages[seat], world, await world.add_officer(f"{seat}.one", agency))
        await expect(pages[seat].locator("#queue-status")).not_to_have_text("Loading the queue…")
        await pages[seat].locator("#availability").click()
        await expect(pages[seat].locator("#availability")).to_have_attribute("aria-pressed", "true")
    await check_in(pages["applicant"], world, token)
    await consent(pages["applicant"])
    for seat in ("cbsa", "cbp"):
        await expect(pages[seat].locator("#call-view")).to_be_visible(timeout=20_000)
    return interview_id, pages["cbsa"], pages["cbp"]


def draft_saved(response: Response) -> bool:
    return response.url.endswith("/draft") and response.request.method == "PUT" and response.ok


async def test_an_officers_draft_verdict_codes_and_notes_survive_a_reload_mid_call(
    world: World, browser: Browser
) -> None:
    errors: list[str] = []
    _, cbsa, cbp = await in_a_call(world, browser, errors)
    await expect(cbsa.locator("#record")).to_contain_text("NX-0001")
    # kept on the server as the officer works (a moment after the last change)
    async with cbsa.expect_response(draft_saved, timeout=10_000):
        await cbsa.locator("#decision input[name=verdict][value=refer]").check()
        await cbsa.locator("#decision input[name=reason][value='CA-DOC']").check()
        await cbsa.locator("#notes").fill(NOTES)
    # and what is typed just before a reload goes out with the page: with this page's
    # timers stopped, only the save on leaving can carry it
    await cbsa.evaluate("() => { window.setTimeout = () => 0; }")
    await cbsa.locator("#notes").fill(NOTES + MORE)
    await cbsa.reload()

    await expect(cbsa.locator("#call-view")).to_be_visible(timeout=20_000)
    await expect(cbsa.locator("#notes")).to_have_value(NOTES + MORE)
    await expect(cbsa.locator("#decision input[name=verdict][value=refer]")).to_be_checked()
    await expect(cbsa.locator("#decision input[name=reason][value='CA-DOC']")).to_be_checked()
    await expect(cbsa.locator("#decision input[name=reason][value='CA-ID']")).not_to_be_checked()
    # the other agency's officer gets nothing of it
    await expect(cbp.locator("#notes")).to_have_value("")
    await expect(cbp.locator("#decision input[name=verdict][value=refer]")).not_to_be_checked()
    assert errors == []


async def test_after_deciding_an_officer_sees_their_own_decision_even_after_a_reload(
    world: World, browser: Browser
) -> None:
    errors: list[str] = []
    _, cbsa, cbp = await in_a_call(world, browser, errors)
    await expect(cbsa.locator("#record")).to_contain_text("NX-0001")
    await decide(cbsa, "refer", NOTES, ("CA-DOC",))
    own = cbsa.locator("#own-decision")
    for text in ("refer", "CA-DOC", NOTES, "Cbsa.One"):
        await expect(own).to_contain_text(text)
    await expect(cbsa.locator("#decision")).to_be_hidden()

    await cbsa.reload()
    await expect(cbsa.locator("#call-view")).to_be_visible(timeout=20_000)
    await expect(own).to_be_visible()
    for text in ("refer", "CA-DOC", NOTES):
        await expect(own).to_contain_text(text)
    await expect(cbsa.locator("#decision")).to_be_hidden()
    await screen(cbsa, "officer-2b-own-decision-after-reload")

    # still blind: the CBP officer sees nothing of it until CBP has decided
    await expect(cbp.locator("#own-decision")).to_be_hidden()
    await expect(cbp.locator("#call-view")).not_to_contain_text(NOTES)
    await decide(cbp, "approve", "")
    await expect(cbp.locator("#outcome")).to_contain_text("Application status: referred")
    await expect(cbp.locator("#own-decision")).to_contain_text("approve")
    assert errors == []


async def test_a_double_click_on_capture_id_still_keeps_one_still(
    world: World, browser: Browser
) -> None:
    errors: list[str] = []
    interview_id, cbsa, cbp = await in_a_call(world, browser, errors)
    await videos_playing(cbsa, ["applicant"])
    sent: list[Request] = []
    cbsa.on(
        "request",
        lambda request: (
            sent.append(request)
            if request.method == "POST" and request.url.endswith("/stills")
            else None
        ),
    )
    await cbsa.locator("#capture").dblclick()
    for page in (cbsa, cbp):
        await expect(page.locator("#stills img")).to_have_count(1, timeout=10_000)
    await expect(cbsa.locator("#capture")).to_be_enabled()
    await cbsa.wait_for_timeout(1500)  # time enough for a second still to land, were it sent
    await expect(cbsa.locator("#stills img")).to_have_count(1)
    assert len(sent) == 1
    assert world.server.app[STILLS].listing(interview_id) == [{"number": 1, "agency": "CBSA"}]
    assert errors == []
