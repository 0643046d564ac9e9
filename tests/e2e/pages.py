"""What a person does on our pages, step by step, in real Chromium; plus the checks every
screen gets: axe-core accessibility (serious or critical violations fail) and a
screenshot into the git-ignored ``artifacts/screens``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyotp
from playwright.async_api import Page, expect

from ..fakes import Account, World

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screens"
AXE = "/static/vendor/axe-core/axe.min.js"
FAILING_IMPACTS = {"serious", "critical"}


def base_url(world: World) -> str:
    return str(world.server.make_url("/")).rstrip("/")


async def screen(page: Page, name: str) -> None:
    """Screenshot the page, then fail on serious or critical accessibility problems."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(url=AXE)
    result: dict[str, Any] = await page.evaluate(
        "axe.run(document, { resultTypes: ['violations'] })"
    )
    failing = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in FAILING_IMPACTS
    ]
    assert not failing, f"accessibility problems on {name}: {failing}"


async def sign_in_staff(page: Page, world: World, account: Account, home: str = "/officer") -> None:
    """Sign in as a member of staff, who lands on ``home``."""
    base = base_url(world)
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(account.username)
    await page.get_by_label("Password").fill(account.password.reveal())
    code = pyotp.TOTP(account.totp_secret.reveal()).at(world.clock())
    world.clock.advance(30)  # the next sign-in needs a fresh code
    await page.get_by_label("One-time code").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}{home}")


async def check_in(
    page: Page,
    world: World,
    token: str,
    language: str = "en",
    dob: str = "1980-05-17",
    shots: str | None = None,
) -> None:
    """Invitation link -> language -> device check -> date of birth -> the interview page."""
    base = base_url(world)
    await page.goto(f"{base}/i/{token}")
    if shots:
        await screen(page, f"{shots}-1-language")
    await page.locator(f"#step-language button[data-language='{language}']").click()
    await expect(page.locator("html")).to_have_attribute("lang", language)
    proceed = page.locator("#devices-continue")
    await expect(proceed).to_be_enabled()
    await expect(page.locator("[data-check='connection']")).to_have_attribute("data-ok", "true")
    if shots:
        await screen(page, f"{shots}-2-device-check")
    await proceed.click()
    await page.locator("#date_of_birth").fill(dob)
    if shots:
        await screen(page, f"{shots}-3-date-of-birth")
    await page.locator("#step-identity button[type=submit]").click()
    await page.wait_for_load_state()


async def consent(page: Page) -> None:
    await expect(page.locator("#step-consent")).to_be_visible()
    await page.locator("#consent-check").check()
    await page.locator("#consent-give").click()


PLAYING = """
async (seats) => {
  const sample = () => seats.map((seat) => {
    const video = document.querySelector(`.tile[data-seat="${seat}"] video`);
    return { seat, width: video.videoWidth, time: video.currentTime };
  });
  const first = sample();
  await new Promise((resolve) => setTimeout(resolve, 700));
  const second = sample();
  return first.map((one, i) => ({ ...one, advanced: second[i].time > one.time }));
}
"""


async def videos_playing(page: Page, seats: list[str], within: float = 30.0) -> None:
    """Each seat's video has a size and its time advances (it is really playing)."""
    state: list[dict[str, Any]] = []
    for _ in range(int(within / 0.8)):
        state = await page.evaluate(PLAYING, seats)
        if all(video["width"] > 0 and video["advanced"] for video in state):
            return
    raise AssertionError(f"not every video is playing: {state}")
