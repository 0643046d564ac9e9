"""The audit console in real Chromium: an auditor signs in, sees the recorded interview
verified, replays it (every seat's video playing on one timeline), seeks from the
timeline; a tampered session shows as failed with its reason; every look is logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from common.names import Seat
from server.appkeys import TRAIL

from ..audit_scene import AuditScene, audit_scene
from ..fakes import Account, World
from ..media import LUMA
from .pages import screen


@pytest.fixture
async def scene(
    recorded: tuple[World, dict[str, Path]], tmp_path: Path
) -> AsyncIterator[AuditScene]:
    world, keys = recorded
    async with audit_scene(world, keys, tmp_path, frames=150, witnessed=True) as built:  # ~5 s
        yield built


async def console_sign_in(page: Page, scene: AuditScene, account: Account) -> None:
    await page.goto(scene.url("/sessions"))
    await expect(page).to_have_url(scene.url("/login"))
    await page.get_by_label("Username").fill(account.username)
    await page.get_by_label("Password").fill(account.password.reveal())
    code = pyotp.TOTP(account.totp_secret.reveal()).at(scene.world.clock())
    scene.world.clock.advance(30)
    await page.get_by_label("One-time code").fill(code)
    await page.get_by_role("button", name="Sign in").click()


REPLAY = """
async () => {
  const videos = [...document.querySelectorAll("#players .tile:not([hidden]) video")];
  const sample = () => videos.map((v) => ({ seat: v.closest(".tile").dataset.seat,
    width: v.videoWidth, time: v.currentTime, paused: v.paused, buffered: v.buffered.length,
    error: v.error && v.error.message }));
  const first = sample();
  await new Promise((resolve) => setTimeout(resolve, 800));
  return { first, second: sample(), clock: window.auditTimeline.now() };
}
"""


BRIGHTNESS = """
() => Object.fromEntries([...document.querySelectorAll('#players .tile')].map((tile) => {
  const video = tile.querySelector('video');
  const canvas = Object.assign(document.createElement('canvas'), { width: 64, height: 48 });
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0, 64, 48);
  const pixels = context.getImageData(16, 24, 32, 16).data;  // the middle, below the counter
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
  return [tile.dataset.seat, sum / (pixels.length / 4) / 3];
}))
"""
MEDIA_ERRORS = "[...document.querySelectorAll('video')].map((v) => v.error && v.error.message)"
CLOCK_OF_BUTTON = (
    "(b) => b.textContent.split(' ')[0].split(':').reduce((m, s) => m * 60 + Number(s), 0)"
)


async def test_an_auditor_replays_a_verified_interview_and_seeks(
    scene: AuditScene, browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await console_sign_in(page, scene, scene.auditor)
    await expect(page).to_have_url(scene.url("/sessions"))
    row = page.locator(f'tr[data-session="{scene.interview_id}"]')
    await expect(row).to_have_attribute("data-status", "verified")
    await screen(page, "audit-1-sessions")

    await row.get_by_role("link").click()
    await expect(page.locator("#verdict")).to_have_attribute("data-status", "verified")
    await expect(page.locator("#timeline li")).not_to_have_count(0)
    await expect(page.locator("#timeline button[data-kind=end]")).to_contain_text(
        "ended by the CBSA officer"
    )
    await page.locator("#play").click()
    state: dict[str, Any] = {}
    for _ in range(40):
        state = await page.evaluate(REPLAY)
        pairs = list(zip(state["first"], state["second"], strict=True))
        if len(pairs) == 3 and all(
            b["width"] > 0 and b["time"] > a["time"] and not b["paused"] and b["buffered"]
            for a, b in pairs
        ):
            break
    else:
        errors_shown = await page.evaluate(MEDIA_ERRORS)
        raise AssertionError(f"the three videos are not playing: {state} {errors_shown}")
    # one timeline: every seat within a fraction of a second of the clock
    assert all(abs(v["time"] - state["clock"]) < 0.6 for v in state["second"]), state
    # each tile really shows its seat's pictures (the synthetic seats differ in brightness)
    shown = await page.evaluate(BRIGHTNESS)
    for seat, brightness in shown.items():
        expected = 1.164 * (LUMA[Seat(seat)] - 16)  # studio-range luma as RGB
        assert abs(brightness - expected) < 15, shown
    await screen(page, "audit-2-replay")

    # clicking a timeline event (the still, captured during the call) seeks the replay to it
    still_event = page.locator("#timeline button[data-kind=still]")
    await expect(still_event).to_contain_text("ID still 1 captured by CBSA")
    target = float(await still_event.evaluate(CLOCK_OF_BUTTON))  # whole seconds, as shown
    play = page.locator("#play")
    if await play.get_attribute("aria-pressed") == "true":
        await play.click()  # pause (a short replay may have reached its end already)
    await expect(play).to_have_attribute("aria-pressed", "false")
    await still_event.click()
    clock = await page.evaluate("window.auditTimeline.now()")
    assert target <= clock < target + 1, (clock, target)
    times = await page.evaluate(
        "[...document.querySelectorAll('#players video')].map((v) => v.currentTime)"
    )
    assert all(abs(time - clock) < 0.5 for time in times), (times, clock)
    accesses = scene.console.app[TRAIL].accesses(scene.interview_id)
    assert {"open", "play"} <= {a.action for a in accesses}
    await expect(page.locator("#accesses li")).not_to_have_count(0)
    still = page.locator("#stills img")
    await expect(still).to_have_count(1)
    assert await still.evaluate("(img) => img.complete && img.naturalWidth") == 320
    assert errors == []


async def test_a_tampered_interview_shows_as_failed_with_the_reason(
    scene: AuditScene, browser: Browser
) -> None:
    page = await browser.new_page()
    await console_sign_in(page, scene, scene.auditor)
    row = page.locator(f'tr[data-session="{scene.interview_id}"]')
    await expect(row).to_have_attribute("data-status", "verified")
    events = scene.session / "events.jsonl"
    events.write_text(events.read_text().replace('"kind":"consent"', '"kind":"consented"', 1))
    # Changed since its check: listed as being checked even under a status filter, then
    # filled in by the page (and hidden, as it is not what this list asks for).
    await page.goto(scene.url("/sessions?status=verified"))
    await expect(row).to_have_attribute("data-status", "checking")
    notice = page.locator("#checking")
    await expect(notice).to_contain_text("Still checking 1 of these sessions")
    await expect(notice).to_have_text("Every session listed has been checked.", timeout=15_000)
    await expect(row).to_have_attribute("data-status", "failed")
    await expect(row).to_be_hidden()
    await page.goto(scene.url("/sessions?status=failed"))
    await expect(row).to_have_attribute("data-status", "failed")
    await row.get_by_role("link").click()
    await expect(page.locator("#verdict")).to_have_text("Verification FAILED")
    # the fault named where it starts: the event by its number and its (edited) kind
    await expect(page.locator("#problems")).to_contain_text("(consented) was altered")
    await screen(page, "audit-3-tampered")


async def test_an_officer_cannot_reach_the_console(scene: AuditScene, browser: Browser) -> None:
    from common.names import Agency

    officer = await scene.world.add_officer("cbsa.curious", Agency.CBSA)
    page = await browser.new_page()
    await console_sign_in(page, scene, officer)
    await expect(page.get_by_role("alert")).to_contain_text("is wrong")
    await page.goto(scene.url(f"/sessions/{scene.interview_id}"))
    await expect(page).to_have_url(scene.url("/login"))
