"""Signing in and opening an invitation in real Chromium: Secure cookies on loopback,
the CSP letting our own scripts run, and the pages working without inline code."""

from __future__ import annotations

import pyotp
from playwright.async_api import Browser, Error, expect

from common.names import Agency

from ..fakes import World, add_applications, application
from .pages import base_url, check_in, sign_in_staff


async def test_officer_signs_in_sees_the_queue_and_marks_available(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    await world.invite("NX-0001")
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    page = await browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    base = str(world.server.make_url("/")).rstrip("/")

    await page.goto(f"{base}/officer")
    await expect(page).to_have_url(f"{base}/login")
    await page.get_by_label("Username").fill(officer.username)
    await page.get_by_label("Password").fill(officer.password.reveal())
    await page.get_by_label("One-time code").fill(
        pyotp.TOTP(officer.totp_secret.reveal()).at(world.clock())
    )
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/officer")
    await expect(page.locator("#queue-status")).to_have_text("1 waiting for a CBSA officer.")
    toggle = page.locator("#availability")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    account = await world.store.accounts.by_username("cbsa.one")
    assert account is not None and account.available
    assert problems == []


async def test_applicant_opens_the_link_and_confirms_the_date_of_birth(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    page = await browser.new_page()
    errors: list[Error] = []
    page.on("pageerror", lambda error: errors.append(error))  # the wrong date's 400 is no error
    base = str(world.server.make_url("/")).rstrip("/")
    await check_in(page, world, token, dob="1999-12-31")  # wrong: back on the form
    await expect(page.get_by_role("alert")).to_contain_text("does not match; 4 tries left")
    await page.locator("#date_of_birth").fill("1980-05-17")
    await page.locator("#step-identity button[type=submit]").click()
    await expect(page).to_have_url(f"{base}/interview")
    await expect(page.locator("#step-consent")).to_be_visible()
    await page.reload()  # the session survives a reload
    await expect(page.locator("#step-consent")).to_be_visible()
    assert errors == []


async def test_signing_out_in_another_tab_sends_the_console_back_to_the_sign_in(
    world: World, browser: Browser
) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    context = await browser.new_context()
    console = await context.new_page()
    await sign_in_staff(console, world, officer)
    toggle = console.locator("#availability")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")  # its socket is open
    other_tab = await context.new_page()
    await other_tab.goto(f"{base_url(world)}/officer")
    await other_tab.get_by_role("button", name="Sign out").click()
    await expect(console).to_have_url(f"{base_url(world)}/login", timeout=10_000)
    await context.close()
