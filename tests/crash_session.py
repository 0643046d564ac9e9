"""Run by tests/test_media_progress.py in its own process: an interview server's session
records (`SessionRecords`) recording the applicant's seat of one interview until it is
killed with SIGKILL. Prints "recording" once the first frame is in, then one line per
second with the number of video frames recorded so far."""

from __future__ import annotations

import asyncio
import sys
import time
from fractions import Fraction

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from server.session_records import SessionRecords
from server.settings import load_settings

from .crash_recorder import clip


async def record(data_dir: str, room: str, recipient: str) -> None:
    settings = load_settings({}, {"data_dir": data_dir, "cbsa_recipient": recipient})
    sink = SessionRecords(settings).sink(RoomId(room))
    video = clip()
    started = time.monotonic()
    n = 0
    while True:
        packet = video[n % len(video)]
        frame = EncodedFrame(packet, n * 3000, Fraction(1, 90000), n % len(video) == 0)
        sink.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
        n += 1
        if n == 1:
            print("recording", flush=True)
        if n % 30 == 0:
            print(n, flush=True)
        await asyncio.sleep(max(0.0, started + n / 30 - time.monotonic()))


if __name__ == "__main__":
    asyncio.run(record(*sys.argv[1:4]))
