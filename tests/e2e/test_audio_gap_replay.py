"""A seat's recording with audio packets lost, played by Chromium's Media Source
Extensions as the audit console's replay does: the picture goes on through the gap
(MSE drops a file's video until its next keyframe at a break in its audio, and stops
playing at the hole), because the recorder fills the gap with silent packets."""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.async_api import Browser

from common.names import Kind
from recordings.age import AgeReader

from ..test_recorder import TimedFeed, by_capture, stream

LOST_FROM_MS, LOST_UNTIL_MS = 1500, 1560  # three audio packets; the next keyframe at 2 s

PLAY = """async ([b64, from, seconds]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const video = document.createElement("video");
  video.muted = true;
  document.body.append(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((done) => source.addEventListener("sourceopen", done, { once: true }));
  const buffer = source.addSourceBuffer('video/webm; codecs="vp8,opus"');
  buffer.appendBuffer(bytes);
  await new Promise((done) => buffer.addEventListener("updateend", done, { once: true }));
  const shown = [];
  const seen = (now, frame) => {
    shown.push(Math.round(frame.mediaTime * 1000));
    video.requestVideoFrameCallback(seen);
  };
  video.requestVideoFrameCallback(seen);
  video.currentTime = from;
  await video.play();
  await new Promise((done) => setTimeout(done, seconds * 1000));
  video.pause();
  return { reached: video.currentTime, shown };
}"""


def recording_with_lost_audio(tmp_path: Path) -> bytes:
    feed = TimedFeed(tmp_path)
    frames = by_capture(stream(Kind.VIDEO, 5, 0, 4000), stream(Kind.AUDIO, 7, 0, 4000))
    feed.play(
        [
            (f.captured + 5, f)
            for f in frames
            if f.kind is Kind.VIDEO or not LOST_FROM_MS <= f.captured < LOST_UNTIL_MS
        ]
    )
    feed.recorder.close()
    [segment] = feed.recorder.segments
    with (feed.directory / segment.file).open("rb") as sealed:
        return b"".join(AgeReader(sealed, [feed.identity]))


async def test_a_replay_plays_on_through_lost_audio_packets(
    browser: Browser, tmp_path: Path
) -> None:
    webm = recording_with_lost_audio(tmp_path)
    page = await browser.new_page()
    played = await page.evaluate(PLAY, [base64.b64encode(webm).decode(), 1.2, 1.5])
    await page.close()
    assert played["reached"] > 2.4, played  # it did not stop at the gap
    between = [ms for ms in played["shown"] if LOST_UNTIL_MS < ms < 1950]
    assert len(between) >= 10, played  # nor dropped the video until the next keyframe
