"""The operator's console in real Chromium: signed in with password and one-time code,
the backlog and its pictures readable by everyone (axe), no inline code (the CSP), and
each figure downloaded as the CSV a spreadsheet opens."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path

from playwright.async_api import Browser, expect

from ..fakes import World, add_applications, application
from ..test_applicant_pages import finished
from ..test_booking_jobs import backlog
from .pages import base_url, screen, sign_in_staff


async def test_an_operator_watches_the_backlog_burn_down_and_downloads_its_figures(
    world: World, browser: Browser
) -> None:
    await finished(world)  # one application decided today: a rate to project from
    await add_applications(world.store, application("NX-0002"), application("NX-0003"))
    operator = await world.add_operator("operator.one")
    page = await browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    base = base_url(world)

    await page.goto(f"{base}/operator")
    await expect(page).to_have_url(f"{base}/login")
    await sign_in_staff(page, world, operator, home="/operator")
    await expect(page).to_have_title("Operator console · NEXUS interview")

    states = page.locator("#backlog-states")
    await expect(states.locator('[data-state="to_invite"] td')).to_have_text("2")
    await expect(states.locator('[data-state="decided"] td')).to_have_text("1")
    burndown = page.get_by_role("img", name="Applications not yet decided")
    await expect(burndown).to_be_visible()
    box = await burndown.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    await expect(
        page.get_by_role("img", name="Decisions per hour, last 24 hours (UTC)")
    ).to_be_visible()
    clears = (world.clock().date() + timedelta(days=14)).isoformat()  # 2 left at 1/7 a day
    await expect(page.locator("#clears-on")).to_have_attribute("datetime", clears)
    await screen(page, "operator-console")

    async with page.expect_download() as started:
        await page.locator('a[href="/operator/figures/backlog.csv"]').click()
    download = await started.value
    assert download.suggested_filename.startswith("backlog-")
    saved = await download.path()
    text = await asyncio.to_thread(Path(saved).read_text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["state"]: row["applications"] for row in rows}["to_invite"] == "2"

    # Booking runs in the background: the console's status region follows it in place.
    await backlog(world, first=100)
    await page.locator("#schedule-book").click()
    await expect(page.locator("#notice")).to_contain_text("Booking the next 7 days has started")
    await page.evaluate("window.stillThisPage = true")
    job = page.locator("#booking-job")
    await expect(job).to_have_attribute("data-state", "running")
    await expect(job).to_contain_text("started by Operator.One")
    await expect(job).to_have_attribute("data-state", "done", timeout=60_000)
    await expect(job).to_contain_text("pending applications were booked")
    assert await page.evaluate("window.stillThisPage === true")  # no reload: the script
    assert problems == []
