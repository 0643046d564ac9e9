"""An interview's life as people see it, in real Chromium: two officers who take a waiting
applicant's interview from the queue start the call at once; "End interview" ends the
call for everyone but not the decision: the officer whose agency has not decided keeps
the form, without the call, and the interview stays in their queue until they decide; a
decision left overdue is offered to the agency's other officers, one of whom takes it over;
an ended call does not reopen (the applicant stays done, a join is refused) and a closed
interview takes no still."""

from __future__ import annotations

from functools import partial

from playwright.async_api import Browser, Page, Response, expect

from common.names import Agency, Seat
from server.appkeys import LIVES
from server.types import ApplicationStatus

from ..calls import applicant_in_call
from ..fakes import World, add_applications, application
from .pages import check_in, consent, screen, sign_in_staff, videos_playing
from .test_interview import decide, report

CALL_STARTS_WITHIN_MS = 1_500
NOTES = "Asked about the 2019 trip; answers match the record."
TWO_DAYS = 2 * 24 * 3600  # past the end of the working day the call ended on


async def pages_of(browser: Browser, errors: list[str]) -> dict[str, Page]:
    """A browser page each for the applicant and the two officers, their script errors
    collected in ``errors``."""
    pages: dict[str, Page] = {}
    for seat in ("applicant", "cbsa", "cbp"):
        pages[seat] = await (await browser.new_context()).new_page()
        pages[seat].on("pageerror", partial(report, errors, seat))
    return pages


async def sign_in_both(world: World, pages: dict[str, Page], available: bool) -> None:
    for seat, agency in (("cbsa", Agency.CBSA), ("cbp", Agency.CBP)):
        await sign_in_staff(pages[seat], world, await world.add_officer(f"{seat}.one", agency))
        await expect(pages[seat].locator("#queue-status")).not_to_have_text("Loading the queue…")
        if available:
            await pages[seat].locator("#availability").click()
            await expect(pages[seat].locator("#availability")).to_have_attribute(
                "aria-pressed", "true"
            )


def take_answered(interview_id: str, response: Response) -> bool:
    return response.request.method == "POST" and response.url.endswith(
        f"/api/interviews/{interview_id}/take"
    )


async def test_a_take_by_both_officers_brings_the_waiting_applicant_in_within_a_second(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    errors: list[str] = []
    pages = await pages_of(browser, errors)
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    await check_in(applicant, world, token)
    await consent(applicant)
    await expect(applicant.locator("#step-waiting")).to_be_visible(timeout=10_000)
    # on duty but not available: nobody is sent to them; they take the interview themselves
    await sign_in_both(world, pages, available=False)
    rows = {
        seat: page.locator("#queue tbody tr", has_text=interview_id)
        for seat, page in (("cbsa", cbsa), ("cbp", cbp))
    }
    for row in rows.values():
        await expect(row).to_be_visible(timeout=10_000)

    await rows["cbsa"].get_by_role("button", name="Take").click()
    await expect(cbsa.locator("#call-view")).to_be_visible()
    # a joint interview: the applicant waits for the CBP officer too
    await expect(applicant.locator("#step-waiting")).to_be_visible()

    async with cbp.expect_response(partial(take_answered, interview_id)) as answered:
        await rows["cbp"].get_by_role("button", name="Take").click()
    taken = await answered.value
    assert taken.ok, await taken.text()
    # the second take starts the call: the applicant leaves the waiting room at once
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=CALL_STARTS_WITHIN_MS)
    await expect(applicant.locator("#step-waiting")).to_be_hidden()
    for page in (cbsa, cbp):
        await expect(page.locator("#call-view")).to_be_visible()
        await videos_playing(page, ["applicant"], within=10.0)
    assert errors == []


async def test_ending_before_the_other_agency_decides_keeps_its_decision_form(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    errors: list[str] = []
    pages = await pages_of(browser, errors)
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    await sign_in_both(world, pages, available=True)
    await check_in(applicant, world, token)
    await consent(applicant)
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
    for page in (cbsa, cbp):
        await expect(page.locator("#call-view")).to_be_visible(timeout=20_000)
    await videos_playing(cbsa, ["applicant"])
    await cbsa.locator("#capture").click()
    await expect(cbp.locator("#stills img")).to_have_count(1, timeout=10_000)

    # CBP has started on its decision (a draft) when CBSA decides and ends the call
    await cbp.locator("#decision input[name=verdict][value=approve]").check()
    await cbp.locator("#notes").fill(NOTES)
    await decide(cbsa, "approve", "")
    await expect(cbsa.locator("#outcome")).to_contain_text("stays hidden")
    await cbsa.locator("#end").click()
    await expect(cbsa.locator("#after-view")).to_be_visible(timeout=10_000)

    # CBP: the call is over (no videos, no call controls), the decision form is not
    ended = cbp.locator("#call-ended")
    await expect(ended).to_be_visible(timeout=10_000)
    await expect(ended).to_contain_text("the interview stays in your queue until you do")
    await expect(cbp.locator("#decision")).to_be_visible()
    await expect(cbp.locator("#after-view")).to_be_hidden()
    await expect(cbp.locator("#live")).to_be_hidden()
    await expect(cbp.locator("#end")).to_be_hidden()
    await expect(cbp.locator("#notes")).to_have_value(NOTES)
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    await screen(cbp, "officer-6-call-ended-decision-open")

    # a reload: the console is on the queue, the interview under "Awaiting your decision"
    await cbp.reload()
    await expect(cbp.locator("#queue-view")).to_be_visible()
    awaiting = cbp.locator("#awaiting tbody tr", has_text=interview_id)
    await expect(awaiting).to_be_visible(timeout=10_000)
    await expect(cbp.locator("#awaiting-heading")).to_have_text("Awaiting your decision")
    await expect(cbp.locator("#queue tbody tr", has_text=interview_id)).to_have_count(0)
    await screen(cbp, "officer-7-queue-awaiting-decision")

    # opened: the record, the still and the form with the draft, and no call
    await awaiting.get_by_role("button", name="Open").click()
    await expect(cbp.locator("#call-ended")).to_be_visible()
    await expect(cbp.locator("#call-heading")).to_be_focused()
    await expect(cbp.locator("#record")).to_contain_text("NX-0001")
    await expect(cbp.locator("#stills img")).to_have_count(1, timeout=10_000)
    await expect(cbp.locator("#notes")).to_have_value(NOTES)
    await expect(cbp.locator("#decision input[name=verdict][value=approve]")).to_be_checked()
    await expect(cbp.locator("#live")).to_be_hidden()
    await screen(cbp, "officer-8-decision-after-the-call")
    await cbp.locator("#decide").click()

    # the decision settles the application; the interview leaves the queue
    await expect(cbp.locator("#after-view")).to_be_visible(timeout=10_000)
    await expect(cbp.locator("#after-outcome")).to_contain_text(
        "Both agencies have decided. Application status: approved."
    )
    await expect(cbp.locator("#after-own-decision")).to_contain_text(NOTES)
    stored = await world.store.applications.get("NX-0001")
    assert stored.status is ApplicationStatus.APPROVED
    await cbp.locator("#next").click()
    await expect(cbp.locator("#queue-view")).to_be_visible()
    await expect(cbp.locator("#awaiting-section")).to_be_hidden()

    await expect(applicant.locator("#step-done")).to_be_visible()
    await applicant.reload()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    assert errors == []


async def test_a_decision_left_overdue_is_offered_to_another_officer_who_takes_it_over(
    world: World, browser: Browser
) -> None:
    errors: list[str] = []
    async with applicant_in_call(world) as call:
        interview_id = call.interview_id
        await call.end(Seat.CBSA)  # neither agency has decided
        await world.server.app[LIVES].drain()  # the end is stored at today's time
        world.clock.advance(TWO_DAYS)
        left_by = (await world.store.interviews.get(interview_id)).officer_for(Agency.CBP)
        page = await (await browser.new_context()).new_page()
        page.on("pageerror", partial(report, errors, "cbp.two"))
        await sign_in_staff(page, world, await world.add_officer("cbp.two", Agency.CBP))

        offered = page.locator("#offered tbody tr", has_text=interview_id)
        await expect(offered).to_be_visible(timeout=10_000)
        await expect(offered).to_contain_text("Cbp.One")  # whose decision it was
        await expect(page.locator("#offered-heading")).to_have_text("Decisions offered to you")
        await expect(page.locator("#awaiting-section")).to_be_hidden()
        await screen(page, "officer-9-decision-offered")
        await offered.get_by_role("button", name="Take over the decision").click()

        await expect(page.locator("#call-ended")).to_be_visible()
        await expect(page.locator("#record")).to_contain_text("NX-0001")
        await expect(page.locator("#live")).to_be_hidden()
        await decide(page, "deny", "Taken over.", ("US-ADM",))
        await expect(page.locator("#after-view")).to_be_visible(timeout=10_000)
        await expect(page.locator("#after-own-decision")).to_contain_text("Cbp.Two")
        decisions = await world.store.decisions.for_interview(interview_id)
        assert decisions[Agency.CBP].verdict == "deny"
        assert decisions[Agency.CBP].officer_id != left_by
        taken = await world.store.interviews.get(interview_id)
        assert taken.officer_for(Agency.CBP) == decisions[Agency.CBP].officer_id

    assert errors == []


JOIN = """
async (interviewId) => {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const answered = new Promise((resolve) => { ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "joined" || message.type === "error") resolve(message);
  }; });
  const silence = new Promise((resolve) => setTimeout(() => resolve({ type: "none" }), 10000));
  ws.send(JSON.stringify({ v: 1, type: "join", interview_id: interviewId }));
  const answer = await Promise.race([answered, silence]);
  ws.close();
  return answer;
}
"""

STILL = """
async (interviewId) => {
  const canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 240 });
  canvas.getContext("2d").fillRect(0, 0, 320, 240);
  const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  const response = await fetch(`/api/interviews/${interviewId}/stills`, {
    method: "POST",
    headers: { "Content-Type": "image/jpeg",
      "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
    body: jpeg,
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}
"""


async def test_an_ended_call_does_not_reopen(world: World, browser: Browser) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    errors: list[str] = []
    pages = await pages_of(browser, errors)
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    await sign_in_both(world, pages, available=True)
    await check_in(applicant, world, token)
    await consent(applicant)
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
    for page in (cbsa, cbp):
        await expect(page.locator("#call-view")).to_be_visible(timeout=20_000)
    await videos_playing(cbsa, ["applicant"])

    # CBSA ends the call before either agency decided: the applicant is done, for good
    await cbsa.locator("#end").click()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    await expect(cbp.locator("#call-ended")).to_be_visible(timeout=10_000)
    await applicant.reload()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    await expect(applicant.locator("#step-call")).to_be_hidden()
    answer = await applicant.evaluate(JOIN, interview_id)
    assert answer["type"] == "error" and answer["code"] == "conflict", answer
    await expect(applicant.locator("#step-done")).to_be_visible()

    # each agency still decides; then the interview is over and takes no still
    await expect(cbsa.locator("#call-ended")).to_be_visible()
    await decide(cbsa, "approve", "")
    await expect(cbsa.locator("#after-view")).to_be_visible(timeout=10_000)
    await decide(cbp, "approve", NOTES)
    await expect(cbp.locator("#after-outcome")).to_contain_text(
        "Both agencies have decided. Application status: approved.", timeout=10_000
    )
    refused = await cbp.evaluate(STILL, interview_id)
    assert refused["status"] == 409 and refused["body"]["error"]["code"] == "conflict", refused
    assert not list(world.settings.data_dir.glob(f"live-stills/{interview_id}.*/*"))
    await applicant.reload()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    assert errors == []
