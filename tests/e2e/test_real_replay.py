"""A recording made by real browsers replays: three Chromium participants (fake camera and
microphone) hold a joint interview through the server with recording on; then an auditor,
in Chromium too, replays it in the audit console. Each seat's video plays through to the
end of its recording on the one timeline, and plays on from wherever the auditor seeks.
Each seat's file, decrypted with the `age` command, has packet timestamps in time order,
as ffprobe reads them and as browsers' WebM parsers insist."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from common.names import Agency
from recordings.keys import read_identity_file
from recordings.tlog import NoteVerifier
from server.appkeys import RECORDS
from server.audit_app import create_audit_app

from ..audit_scene import AuditScene
from ..fakes import World, add_applications, application, fast_passwords
from ..media import wait_for
from .pages import base_url, check_in, consent, sign_in_staff, videos_playing
from .test_audit_console import console_sign_in
from .test_interview import decide, record_finished

CALL_SECONDS = 10  # of call, all three in it, before the officers decide and end it
SEATS = ("applicant", "cbsa", "cbp")


async def hold_an_interview(world: World, browser: Browser) -> Path:
    """Three browsers hold a joint interview; returns its finished session record."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    accounts = {
        "cbsa": await world.add_officer("cbsa.one", Agency.CBSA),
        "cbp": await world.add_officer("cbp.one", Agency.CBP),
    }
    contexts = [await browser.new_context() for _ in SEATS]
    pages = {seat: await context.new_page() for seat, context in zip(SEATS, contexts, strict=True)}
    try:
        for seat in ("cbsa", "cbp"):
            await sign_in_staff(pages[seat], world, accounts[seat])
            await pages[seat].locator("#availability").click()
            await expect(pages[seat].locator("#availability")).to_have_attribute(
                "aria-pressed", "true"
            )
        applicant = pages["applicant"]
        await check_in(applicant, world, token)
        await expect(applicant).to_have_url(f"{base_url(world)}/interview")
        await consent(applicant)
        await expect(applicant.locator("#step-call")).to_be_visible(timeout=20_000)
        for seat, page in pages.items():
            await videos_playing(page, [other for other in SEATS if other != seat])
        # halfway, the CBP officer reloads the page: a new connection, new RTP clocks and
        # a new segment of that seat's recording
        await asyncio.sleep(CALL_SECONDS / 2)
        await pages["cbp"].reload()
        await expect(pages["cbp"].locator("#call-view")).to_be_visible()
        await videos_playing(pages["cbp"], ["applicant", "cbsa"])
        await asyncio.sleep(CALL_SECONDS / 2)
        await decide(pages["cbsa"], "approve", "Seen.")
        await decide(pages["cbp"], "approve", "")
        await expect(pages["cbp"].locator("#outcome")).to_contain_text(
            "Application status: approved", timeout=10_000
        )
        await pages["cbsa"].locator("#end").click()
        await expect(applicant.locator("#step-done")).to_be_visible(timeout=10_000)
    finally:
        for context in contexts:
            await context.close()
    session = world.settings.data_dir / "records" / interview_id
    await wait_for(lambda: record_finished(session), within=20)
    return session


def packets(plain: Path) -> list[tuple[str, float]]:
    """Every packet in the file, in file order: its codec and pts (seconds), by ffprobe."""
    ffprobe = shutil.which("ffprobe")
    assert ffprobe, "ffprobe is missing: `make test` installs it"
    done = subprocess.run(
        [
            *(ffprobe, "-v", "error", "-of", "json"),
            *("-show_entries", "stream=index,codec_name:packet=stream_index,pts_time"),
            str(plain),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    codecs = {s["index"]: s["codec_name"] for s in found["streams"]}
    return [(codecs[p["stream_index"]], float(p["pts_time"])) for p in found["packets"]]


def decrypted(segment: Path, key: Path, into: Path) -> Path:
    age = shutil.which("age")
    assert age, "age is missing: `make test` installs it"
    plain = into / segment.name.removesuffix(".age")
    subprocess.run([age, "-d", "-i", str(key), "-o", str(plain), str(segment)], check=True)
    return plain


@pytest.fixture
async def recording(
    recorded: tuple[World, dict[str, Path]], browser: Browser, tmp_path: Path
) -> AsyncIterator[tuple[World, dict[str, Path], Path]]:
    world, keys = recorded
    yield world, keys, await hold_an_interview(world, browser)


# Each seat's video, sampled: where it is, what is buffered, whether it has frames to show.
SAMPLE = """
() => Object.fromEntries([...document.querySelectorAll('#players .tile')].map((tile) => {
  const v = tile.querySelector('video');
  const ranges = [];
  for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
  return [tile.dataset.seat, { time: v.currentTime, ready: v.readyState, paused: v.paused,
    frames: v.getVideoPlaybackQuality().totalVideoFrames, buffered: ranges,
    error: v.error && v.error.message }];
}))
"""


def covered(ranges: list[list[float]], start: float, end: float) -> float:
    """Seconds of [start, end] that the buffered ranges cover."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in ranges)


async def test_a_browser_recorded_interview_replays_to_the_end_and_seeks(
    recording: tuple[World, dict[str, Path], Path], browser: Browser, tmp_path: Path
) -> None:
    world, keys, session = recording

    # the auditor replays it
    auditor = await world.add_auditor("auditor.one")
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    app = create_audit_app(
        world.settings.replace(audit_dir=tmp_path / "audit-console"),
        read_identity_file(keys["audit"]),
        [verifier],
        clock=world.clock,
        passwords=fast_passwords(),
    )
    console = TestServer(app, host="127.0.0.1")
    await console.start_server()
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await replay_and_seek(page, AuditScene(world, console, session, auditor))
        assert errors == []
    finally:
        await console.close()

    # each seat's file: each stream's packets in time order (each track has clusters of its
    # own, in order within each cluster: `tests/test_recorder.py`)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    for seat in SEATS:
        for segment in sorted(session.glob(f"{seat}-*.webm.age")):
            plain = await asyncio.to_thread(decrypted, segment, keys["audit"], plain_dir)
            found = await asyncio.to_thread(packets, plain)
            for codec in ("vp8", "opus"):
                pts = [p for c, p in found if c == codec]
                assert len(pts) > 5 * CALL_SECONDS, (segment.name, codec, len(pts))
                assert all(a < b for a, b in itertools.pairwise(pts)), (segment.name, codec)


async def replay_and_seek(page: Page, scene: AuditScene) -> None:
    await console_sign_in(page, scene, scene.auditor)
    await expect(page).to_have_url(scene.url("/sessions"))
    await page.goto(scene.url(f"/sessions/{scene.interview_id}"))
    await page.wait_for_function("() => window.auditTimeline !== undefined")
    data: dict[str, Any] = await page.evaluate(
        f"fetch('/api/sessions/{scene.interview_id}').then((r) => r.json())"
    )
    spans = {
        seat: [(s["start"], s["start"] + s["duration"]) for s in segments]
        for seat, segments in data["seats"].items()
    }
    assert set(spans) == set(SEATS) and len(spans["cbp"]) == 2, spans
    duration = float(data["duration"])
    assert duration >= CALL_SECONDS, spans

    # play from the start to the end: every seat's video plays through its recording
    await page.locator("#play").click()
    trace: list[tuple[float, dict[str, Any]]] = []
    while True:
        await page.wait_for_timeout(500)
        clock = float(await page.evaluate("window.auditTimeline.now()"))
        trace.append((clock, await page.evaluate(SAMPLE)))
        if clock >= duration:
            break
    final = trace[-1][1]
    report = {
        seat: {
            "span": spans[seat],
            "buffered": final[seat]["buffered"],
            "time": final[seat]["time"],
            "frames": final[seat]["frames"],
        }
        for seat in SEATS
    }
    for seat in SEATS:
        assert final[seat]["error"] is None, report
        for start, end in spans[seat]:
            # all of it is buffered (but for its last frames' fraction of a second)
            assert covered(final[seat]["buffered"], start, end) >= end - start - 0.5, report
            # each half-second the video showed new frames, up to its end
            during = [
                (a[seat], b[seat])
                for (clock, a), (_, b) in itertools.pairwise(trace)
                if start + 0.3 < clock and clock + 0.5 < end - 0.3
            ]
            stalls = [
                (round(a["time"], 2), a["frames"])
                for a, b in during
                if b["frames"] <= a["frames"] or b["time"] <= a["time"]
            ]
            assert not stalls, (seat, (start, end), stalls, report)
        assert final[seat]["time"] >= spans[seat][-1][1] - 0.5, report

    # seeking anywhere: every seat plays on from there
    for fraction in (0.2, 0.6, 0.9):
        target = duration * fraction
        await page.evaluate(f"window.auditTimeline.seek({target})")
        if await page.locator("#play").get_attribute("aria-pressed") != "true":
            await page.locator("#play").click()
        await page.wait_for_timeout(300)
        first = await page.evaluate(SAMPLE)
        await page.wait_for_timeout(700)
        second = await page.evaluate(SAMPLE)
        for seat in SEATS:
            if not any(start <= target < end - 1.2 for start, end in spans[seat]):
                continue
            a, b = first[seat], second[seat]
            state = (fraction, target, seat, a, b)
            assert abs(a["time"] - target) < 1.0, state
            assert b["time"] > a["time"] and b["frames"] > a["frames"], state
            assert b["ready"] >= 3, state
