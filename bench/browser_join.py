"""Join speed in real Chromium: from sending ``join`` to the first remote video frame.

    .venv/bin/python bench/browser_join.py [--joins 20]

An applicant's page (ours, as served) sits in an interview with two synthetic officers
(aiortc, joined straight into the room). Each page reload rejoins the call; the page's
own performance measure ``join-to-first-frame`` (a mark when ``join`` is sent, then the
first frame from ``requestVideoFrameCallback``) is read after every reload. In the same
run and the same browser, the baseline does what aiortc's examples do: gather every ICE
candidate before sending the offer. Prints p50/p95 for both; never fails on timing.
Reuses the test suite's helpers (`tests/fakes.py`, `tests/media.py`) to set the scene.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestServer
from playwright.async_api import Page, async_playwright, expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.names import Agency, Seat
from media.address_policy import EVERY_NETWORK
from server.app import create_app
from server.settings import load_settings
from tests.calls import join_and_call, open_socket
from tests.e2e.conftest import CHROMIUM_FLAGS
from tests.e2e.pages import check_in, consent
from tests.fakes import FakeClock, World, add_applications, application, fast_passwords
from tests.media import SyntheticParticipant

OURS = """
async () => {
  for (let i = 0; i < 200; i++) {
    const [entry] = performance.getEntriesByName("join-to-first-frame");
    if (entry) return entry.duration;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return null;
}
"""

# aiortc's example pattern: the whole offer, every candidate gathered, in one message.
GATHER_ALL = """
async (interviewId) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const ws = new WebSocket(`ws://${location.host}/ws`);
  await new Promise((resolve) => (ws.onopen = resolve));
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  const firstFrame = new Promise((resolve) => {
    pc.ontrack = ({ track, streams }) => {
      if (track.kind !== "video" || streams[0].id !== "cbsa") return;
      const video = document.createElement("video");
      video.muted = true;
      video.srcObject = new MediaStream([track]);
      video.play();
      video.requestVideoFrameCallback(() => resolve(performance.now()));
    };
  });
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "joined") {
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
      for (let i = 0; i < 2; i++) {
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
      }
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") resolve();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
      });
      ws.send(JSON.stringify({ v: 1, type: "offer", sdp: pc.localDescription.sdp }));
    } else if (message.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    }
  };
  const started = performance.now();
  ws.send(JSON.stringify({ v: 1, type: "join", interview_id: interviewId }));
  const took = (await firstFrame) - started;
  pc.close();
  ws.close();
  for (const track of stream.getTracks()) track.stop();
  return took;
}
"""


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<36} n={len(values):<3} p50 {statistics.median(values):6.0f} ms   "
        f"p95 {p95:6.0f} ms   min {ordered[0]:5.0f}   max {ordered[-1]:5.0f}"
    )


async def measure(page: Page, joins: int, interview_id: str) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(joins):
        await page.reload()
        took = await page.evaluate(OURS)
        if took is not None:
            ours.append(float(took))
        await page.evaluate("window.stop()")
        await page.goto(page.url.replace("/interview", "/api/session"))  # no call running
        baseline.append(float(await page.evaluate(GATHER_ALL, interview_id)))
        await page.goto(page.url.replace("/api/session", "/interview"))
    return ours, baseline


async def main(joins: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = load_settings(
            {}, {"data_dir": str(Path(directory) / "data"), "media_peer_networks": EVERY_NETWORK}
        )
        clock, passwords = FakeClock(), fast_passwords()
        server = TestServer(create_app(settings, clock, passwords), host="127.0.0.1")
        await server.start_server()
        world = World(server, settings, clock, passwords)
        await add_applications(world.store, application("NX-0001"))
        interview_id, token = await world.invite("NX-0001")
        officers = []
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            client = await world.client()
            await world.sign_in(client, await world.add_officer(f"{seat}.bench", agency))
            await client.post(
                f"/api/interviews/{interview_id}/take",
                headers={"X-CSRF-Token": await world.csrf(client)},
            )
            person = SyntheticParticipant(seat)
            await join_and_call(await open_socket(world, client), interview_id, person)
            officers.append(person)
        executable = shutil.which("chromium")
        assert executable, "install Debian's chromium (make test does)"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS
            )
            page = await browser.new_page()
            await check_in(page, world, token)
            await consent(page)
            await expect(page.locator("#step-call")).to_be_visible()
            ours, baseline = await measure(page, joins, interview_id)
            await browser.close()
        for person in officers:
            await person.close()
        for client in world.clients:
            await client.close()
        await server.close()
    print(summary("ours (trickle ICE, pre-made slots)", ours))
    print(summary("baseline (gather all ICE, then offer)", baseline))
    print(f"ratio of medians: {statistics.median(baseline) / statistics.median(ours):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20)
    asyncio.run(main(parser.parse_args().joins))
