"""A whole interview through the pages, in three real Chromium browser contexts: an
applicant checks in, two officers take the call, capture an ID still, decide blind and
end it; the decisions, the application status and the session record are then checked."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from playwright.async_api import Browser, Error, Page, ViewportSize, expect

from common.names import Agency
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import RECORDS
from server.types import ApplicationStatus

from ..fakes import World, add_applications, application
from ..media import wait_for
from .pages import base_url, check_in, consent, screen, sign_in_staff, videos_playing

PHONE = ViewportSize(width=390, height=844)
DESK = ViewportSize(width=1280, height=900)


def record_finished(session: Path) -> bool:
    """The interview's record ends with ``close`` (both agencies decided, the call is over)
    and the final checkpoint, which follows it shortly after, covers it."""
    events = session / "events.jsonl"
    lines = events.read_bytes().splitlines() if events.exists() else []
    final = session / "checkpoints" / f"{len(lines):010d}.note"
    return bool(lines) and b'"kind":"close"' in lines[-1] and final.exists()


def report(errors: list[str], seat: str, error: Error) -> None:
    errors.append(f"{seat}: {error}")


async def decide(page: Page, verdict: str, notes: str, codes: tuple[str, ...] = ()) -> None:
    await page.locator(f"#decision input[name=verdict][value={verdict}]").check()
    for code in codes:
        await page.locator(f"#decision input[name=reason][value='{code}']").check()
    await page.locator("#notes").fill(notes)
    await page.locator("#decide").click()


async def test_an_applicant_and_two_officers_complete_an_interview_in_the_browser(
    recorded: tuple[World, dict[str, Path]], browser: Browser
) -> None:
    world, _ = recorded
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    accounts = {
        "cbsa": await world.add_officer("cbsa.one", Agency.CBSA),
        "cbp": await world.add_officer("cbp.one", Agency.CBP),
    }
    pages: dict[str, Page] = {}
    for seat in ("applicant", "cbsa", "cbp"):
        # the applicant on a phone-sized screen, the officers at their desks
        viewport = PHONE if seat == "applicant" else DESK
        context = await browser.new_context(viewport=viewport, is_mobile=seat == "applicant")
        pages[seat] = await context.new_page()
    applicant, cbsa, cbp = pages["applicant"], pages["cbsa"], pages["cbp"]
    errors: list[str] = []
    for seat, page in pages.items():
        page.on("pageerror", partial(report, errors, seat))

    # the officers sign in and make themselves available
    for seat in ("cbsa", "cbp"):
        await sign_in_staff(pages[seat], world, accounts[seat])
        await expect(pages[seat].locator("#queue-status")).not_to_have_text("Loading the queue…")
        await pages[seat].locator("#availability").click()
        await expect(pages[seat].locator("#availability")).to_have_attribute("aria-pressed", "true")
    await screen(cbsa, "officer-1-queue")

    # the applicant checks in, consents, and the waiting room pairs them at once
    await check_in(applicant, world, token, shots="applicant")
    await expect(applicant).to_have_url(f"{base_url(world)}/interview")
    await screen(applicant, "applicant-4-consent")
    await consent(applicant)

    # everyone sees both others, playing
    await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
    await videos_playing(applicant, ["cbsa", "cbp"])
    await videos_playing(cbsa, ["applicant", "cbp"])
    await videos_playing(cbp, ["applicant", "cbsa"])
    await expect(applicant.locator('.tile[data-seat="cbsa"] .name')).to_have_text("Cbsa.One (CBSA)")
    await expect(cbsa.locator("#record")).to_contain_text("NX-0001")
    await screen(applicant, "applicant-5-call")

    # the applicant switches the camera and microphone off: both officers see it
    await applicant.locator("#toggle-video").click()
    await applicant.locator("#toggle-audio").click()
    await expect(applicant.locator("#toggle-video")).to_have_text("Turn camera on")
    for page in (cbsa, cbp):
        tile = page.locator('.tile[data-seat="applicant"]')
        await expect(tile.locator("[data-flag=video]")).to_be_visible()
        await expect(tile.locator("[data-flag=audio]")).to_be_visible()
    await applicant.locator("#toggle-video").click()
    await applicant.locator("#toggle-audio").click()
    await expect(cbp.locator('.tile[data-seat="applicant"] [data-flag=video]')).to_be_hidden()

    # an officer reloading the console lands back in the call
    await cbp.reload()
    await expect(cbp.locator("#call-view")).to_be_visible()
    await videos_playing(cbp, ["applicant", "cbsa"])

    # an ID still, captured by CBSA, shows on both officers' pages at the camera's full
    # resolution: the applicant's camera keeps its resolution when the browser is short of
    # CPU (three browsers and the server share this machine) and gives up frame rate
    own_video = applicant.locator(".tile.self video")
    hint = "v => v.srcObject.getVideoTracks()[0].contentHint"
    assert await own_video.evaluate(hint) == "detail"
    await cbsa.locator("#capture").click()
    for page in (cbsa, cbp):
        await expect(page.locator("#stills img")).to_have_count(1, timeout=10_000)
    assert await cbp.locator("#stills img").evaluate("img => img.naturalWidth") == 640

    # blind decisions: CBSA cannot see CBP's until both are in
    await decide(cbsa, "approve", "Documents checked against the still.")
    await expect(cbsa.locator("#outcome")).to_contain_text("other agency's decision stays hidden")
    await screen(cbsa, "officer-2-call-decided")
    await decide(cbp, "approve", "")
    for page in (cbsa, cbp):
        await expect(page.locator("#outcome")).to_contain_text(
            "Application status: approved", timeout=10_000
        )
    await screen(cbp, "officer-3-both-decided")

    # CBSA ends the interview: the applicant sees the completion screen
    await cbsa.locator("#end").click()
    await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    await expect(cbp.locator("#after-view")).to_be_visible()
    await screen(applicant, "applicant-6-done")
    await screen(cbsa, "officer-4-ended")

    decisions = await world.store.decisions.for_interview(interview_id)
    assert {agency: d.verdict for agency, d in decisions.items()} == {
        Agency.CBSA: "approve",
        Agency.CBP: "approve",
    }
    stored = await world.store.applications.get("NX-0001")
    assert stored.status is ApplicationStatus.APPROVED

    session = world.settings.data_dir / "records" / interview_id
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    await wait_for(lambda: record_finished(session))
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert result.closed and not result.failed, result.problems  # no witnesses here
    assert result.segments >= 3
    log = (session / "events.jsonl").read_text()
    assert '"kind":"still"' in log and '"kind":"consent"' in log and '"kind":"end"' in log
    assert errors == []
