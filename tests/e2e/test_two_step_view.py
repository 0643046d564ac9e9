"""What the officers see in a two-step interview, in Chromium: the CBP officer's page shows
the ID still captured in the CBSA step (stills are shown to the interview's officers until
it is over), and no tile for the CBSA seat, which is not in the CBP step's call; once both
agencies have decided and the CBP step's call ended, the interview is over: the stills are
gone from the page and from the server."""

from __future__ import annotations

from functools import partial

from playwright.async_api import Browser, Page, expect

from common.names import Agency
from server.types import InterviewMode

from ..fakes import World, add_applications, application
from .pages import check_in, consent, screen, sign_in_staff, videos_playing
from .test_interview import decide, report

STILL_AND_LIST = """
async ({ still, interview }) => ({
  still: (await fetch(still)).status,
  listed: (await (await fetch(`/api/interviews/${interview}`)).json()).stills,
})
"""


async def test_the_cbp_officer_sees_the_cbsa_steps_still_and_no_cbsa_tile(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0003"))
    interview_id, token = await world.invite("NX-0003", InterviewMode.TWO_STEP)
    pages: dict[str, Page] = {}
    errors: list[str] = []
    for seat in ("applicant", "cbsa", "cbp"):
        pages[seat] = await (await browser.new_context()).new_page()
        pages[seat].on("pageerror", partial(report, errors, seat))
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    names = {"cbsa": "Cbsa.Stepone", "cbp": "Cbp.Steptwo"}  # display names of the accounts
    for seat, agency in (("cbsa", Agency.CBSA), ("cbp", Agency.CBP)):
        account = await world.add_officer(names[seat].lower(), agency)
        await sign_in_staff(pages[seat], world, account)
        await expect(pages[seat].locator("#queue-status")).not_to_have_text("Loading the queue…")
        await pages[seat].locator("#availability").click()
        await expect(pages[seat].locator("#availability")).to_have_attribute("aria-pressed", "true")
    await check_in(applicant, world, token)
    await consent(applicant)

    # the CBSA step: CBSA captures an ID still, decides and ends its step
    await expect(cbsa.locator("#call-view")).to_be_visible(timeout=20_000)
    await videos_playing(cbsa, ["applicant"])
    await cbsa.locator("#capture").click()
    await expect(cbsa.locator("#stills img")).to_have_count(1, timeout=10_000)
    await expect(cbsa.locator('.tile[data-seat="cbp"]')).to_be_hidden()
    await decide(cbsa, "approve", "")
    await expect(cbsa.locator("#outcome")).to_contain_text("stays hidden")
    await cbsa.locator("#end").click()

    # the CBP step: the CBSA step's still is on the CBP officer's page, loaded
    await expect(cbp.locator("#call-view")).to_be_visible(timeout=20_000)
    await videos_playing(cbp, ["applicant"])
    still = cbp.locator("#stills img")
    await expect(still).to_have_count(1, timeout=10_000)
    await expect(still).to_have_attribute("alt", "ID 1 (CBSA)")
    await cbp.wait_for_function(
        "() => document.querySelector('#stills img').naturalWidth === 640", timeout=10_000
    )
    await expect(cbp.locator("#stills-status")).to_contain_text("1 ID still(s)")
    # ... and no participant tile for the CBSA seat: not a black one, not with a name
    await expect(cbp.locator('.tile[data-seat="applicant"]')).to_be_visible()
    await expect(cbp.locator('.tile[data-seat="cbsa"]')).to_be_hidden()
    await expect(cbp.locator("#call-view").get_by_text(names["cbsa"])).to_have_count(0)
    await expect(cbp.locator("#call-view .tile:visible")).to_have_count(2)  # applicant, self
    await screen(cbp, "officer-5-two-step-cbp-step")
    # the applicant's page likewise: the CBP officer's tile, named; none for CBSA
    await expect(applicant.locator('.tile[data-seat="cbp"]')).to_be_visible()
    await expect(applicant.locator('.tile[data-seat="cbsa"]')).to_be_hidden()
    await expect(applicant.get_by_text(names["cbsa"])).to_have_count(0)

    # both agencies decided: the stills stay while the call is on, the interview is over
    # once CBP ends it, and they are no longer kept, on the page or on the server
    await decide(cbp, "approve", "")
    await expect(cbp.locator("#outcome")).to_contain_text("Application status: approved")
    await expect(still).to_have_count(1)
    src = await still.get_attribute("src")
    await cbp.locator("#end").click()
    await expect(cbp.locator("#after-view")).to_be_visible(timeout=10_000)
    await expect(cbp.locator("#stills img:visible")).to_have_count(0)
    gone = await cbp.evaluate(STILL_AND_LIST, {"still": src, "interview": interview_id})
    assert gone == {"still": 404, "listed": []}, gone
    assert not list(world.settings.data_dir.glob(f"live-stills/{interview_id}.*/*"))
    assert errors == []
