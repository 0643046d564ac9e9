from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make test` installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


@pytest.fixture
async def browser_denying_camera() -> AsyncIterator[Browser]:
    """Chromium whose camera and microphone permission prompt is answered "Block" (without
    the fake-UI flag, headless Chromium denies it, as a person clicking Block would)."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make test` installs it"
    flags = [flag for flag in CHROMIUM_FLAGS if flag != "--use-fake-ui-for-media-stream"]
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=flags)
        yield launched
        await launched.close()
