"""Real Chromium through the server: the browser's camera reaches an aiortc participant
and that participant's video plays in the browser, with no codec on the server. The
browser speaks the protocol itself (consent, the waiting room, join, offer), not through
our page's script."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser

from common.names import Agency, Kind, Seat
from server.views.applicant import CONSENT_VERSION

from ..calls import join_and_call, officer_who_took, open_socket
from ..fakes import World, add_applications, application
from ..media import SyntheticParticipant, wait_for
from .pages import check_in

CALL = """
async ({ interviewId, consentVersion }) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly" });
  pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly" });
  for (let i = 0; i < 2; i++) {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }
  const seen = {};
  pc.ontrack = (event) => {
    if (event.track.kind !== "video") return;
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    video.srcObject = new MediaStream([event.track]);
    video.dataset.seat = event.streams[0].id;
    document.body.append(video);
  };
  const ws = new WebSocket(`ws://${location.host}/ws`);
  await new Promise((resolve) => (ws.onopen = resolve));
  const inbox = [];
  let wake = null;
  ws.onmessage = (event) => { inbox.push(JSON.parse(event.data)); if (wake) wake(); };
  const next = async (type) => {
    for (;;) {
      const index = inbox.findIndex((m) => m.type === type || m.type === "error");
      if (index >= 0) return inbox.splice(index, 1)[0];
      await new Promise((resolve) => (wake = resolve));
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) ws.send(JSON.stringify({ v: 1, type: "candidate",
      candidate: candidate.candidate, sdp_mid: candidate.sdpMid,
      sdp_mline_index: candidate.sdpMLineIndex }));
  };
  const consent = await fetch("/api/applicant/consent", {
    method: "POST",
    headers: { "Content-Type": "application/json",
      "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
    body: JSON.stringify({ text_version: consentVersion, language: "en" }),
  });
  if (!consent.ok) return (await consent.json()).error.message;
  ws.send(JSON.stringify({ v: 1, type: "ready", interview_id: interviewId }));
  const paired = await next("paired");  // both officers took it: the call is on
  if (paired.type === "error") return paired.message;
  ws.send(JSON.stringify({ v: 1, type: "join", interview_id: interviewId }));
  const joined = await next("joined");
  if (joined.type === "error") return joined.message;
  await pc.setLocalDescription(await pc.createOffer());
  ws.send(JSON.stringify({ v: 1, type: "offer", sdp: pc.localDescription.sdp }));
  const answer = await next("answer");
  if (answer.type === "error") return answer.message;
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  window.callState = () => [...document.querySelectorAll("video")].map((v) => ({
    seat: v.dataset.seat, width: v.videoWidth, time: v.currentTime }));
  return "ok";
}
"""


async def test_a_browser_and_an_aiortc_participant_see_each_other(
    world: World, browser: Browser
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    officer = SyntheticParticipant(Seat.CBSA)
    page = await browser.new_page()
    try:
        await check_in(page, world, token)
        cbsa = await officer_who_took(world, interview_id, Agency.CBSA)
        await officer_who_took(world, interview_id, Agency.CBP)
        # the CBSA officer sits in the call before the applicant comes
        await join_and_call(await open_socket(world, cbsa), interview_id, officer)
        called = {"interviewId": interview_id, "consentVersion": CONSENT_VERSION}
        assert await page.evaluate(CALL, called) == "ok"

        # the browser's camera arrives at the officer and decodes there
        await wait_for(lambda: officer.got(Seat.APPLICANT, Kind.VIDEO).frames >= 15, within=20)
        assert officer.got(Seat.APPLICANT, Kind.AUDIO).frames > 0

        # the officer's video plays in the browser, labelled with the officer's seat
        async def playing() -> list[dict[str, float]]:
            state: list[dict[str, Any]] = await page.evaluate("window.callState()")
            return [v for v in state if v["seat"] == "cbsa" and v["width"]]

        for _ in range(100):
            if await playing():
                break
            await page.wait_for_timeout(100)
        first = await playing()
        assert first, "the officer's video never played in the browser"
        await page.wait_for_timeout(500)
        assert (await playing())[0]["time"] > first[0]["time"]  # and it keeps playing
    finally:
        await officer.close()
        await page.close()
