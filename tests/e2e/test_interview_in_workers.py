"""The whole interview in Chromium, as `test_interview` plays it, with the media in two
media worker processes (as `serve` runs it by default), not in the server's process:
pages, stills, decisions and the record work the same through the media-plane protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from server.appkeys import ROOMS, WORKER_PROCESSES
from server.settings import Settings

from ..fakes import World
from ..media import wait_for
from .test_interview import (
    test_an_applicant_and_two_officers_complete_an_interview_in_the_browser as whole_interview,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(media_workers=2)


async def test_the_whole_interview_in_the_browser_with_media_in_worker_processes(
    recorded: tuple[World, dict[str, Path]], browser: Browser
) -> None:
    world, _ = recorded
    app = world.server.app
    await wait_for(lambda: len(app[ROOMS].workers) == 2)  # no worker in the server's process
    assert len(app[WORKER_PROCESSES].pids) == 2
    await whole_interview(recorded, browser)
    assert {name for name in app[ROOMS].workers} == {"local-1", "local-2"}
