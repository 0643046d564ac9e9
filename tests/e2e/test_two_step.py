"""Two-step mode in the browser (the 2023 arrangement): the applicant meets the CBSA
officer first; once CBSA has decided and ended its step, the same page waits again and
the CBP officer takes the second step, in the same interview record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from common.names import Agency
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import RECORDS
from server.types import ApplicationStatus, InterviewMode

from ..fakes import World, add_applications, application
from ..media import wait_for
from .pages import check_in, consent, sign_in_staff, videos_playing
from .test_interview import decide, record_finished


async def test_a_two_step_interview_runs_cbsa_then_cbp_in_one_record(
    recorded: tuple[World, dict[str, Path]], browser: Browser
) -> None:
    world, _ = recorded
    await add_applications(world.store, application("NX-0002"))
    interview_id, token = await world.invite("NX-0002", InterviewMode.TWO_STEP)
    pages: dict[str, Page] = {}
    for seat in ("applicant", "cbsa", "cbp"):
        pages[seat] = await (await browser.new_context()).new_page()
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    for seat, agency in (("cbsa", Agency.CBSA), ("cbp", Agency.CBP)):
        await sign_in_staff(pages[seat], world, await world.add_officer(f"{seat}.two", agency))
        await expect(pages[seat].locator("#queue-status")).not_to_have_text("Loading the queue…")
        await pages[seat].locator("#availability").click()
        await expect(pages[seat].locator("#availability")).to_have_attribute("aria-pressed", "true")

    await check_in(applicant, world, token)
    await consent(applicant)
    # step 1: CBSA only; CBP stays in its queue view
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
    await videos_playing(applicant, ["cbsa"])
    await videos_playing(cbsa, ["applicant"])
    await expect(cbp.locator("#queue-view")).to_be_visible()
    await decide(cbsa, "approve", "")
    await expect(cbsa.locator("#outcome")).to_contain_text("stays hidden")
    await cbsa.locator("#end").click()

    # the applicant waits again, then CBP takes step 2
    await expect(applicant.locator("#waiting-status")).to_contain_text(
        "CBSA part is done", timeout=10_000
    )
    await expect(cbp.locator("#call-view")).to_be_visible(timeout=20_000)
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
    await videos_playing(applicant, ["cbp"])
    await videos_playing(cbp, ["applicant"])
    await decide(cbp, "approve", "")
    await expect(cbp.locator("#outcome")).to_contain_text("Application status: approved")
    await cbp.locator("#end").click()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)

    stored = await world.store.applications.get("NX-0002")
    assert stored.status is ApplicationStatus.APPROVED
    session = world.settings.data_dir / "records" / interview_id
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    await wait_for(lambda: record_finished(session))
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert result.closed and not result.failed, result.problems  # no witnesses here
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    ends = [(e["by"], e["next"]) for e in events if e["kind"] == "end"]
    assert ends == [("cbsa", "cbp"), ("cbp", "done")]
    assert events[-1]["kind"] == "close"
