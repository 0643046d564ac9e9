"""Run by tests in its own process, recording the applicant's seat of one interview until
it is killed with SIGKILL: either an interview server's session records
(`SessionRecords`: ``<data dir> <room> <recipient>``) or a bare recorder writing files into
a directory (``--recorder <directory> <recipient>``, with one segment for the whole run).
Prints "recording" once the first frame is in, then one line per second with the number
of video frames recorded so far."""

from __future__ import annotations

import asyncio
import sys
import time
from fractions import Fraction
from pathlib import Path

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from media.types import RecordingSink
from recordings.keys import Recipient
from recordings.recorder import FileOutputs, Recorder
from server.session_records import SessionRecords
from server.settings import load_settings

from .clips import clip


async def record(sink: RecordingSink) -> None:
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


def sink(arguments: list[str]) -> RecordingSink:
    if arguments[0] == "--recorder":
        outputs = FileOutputs(Path(arguments[1]))
        return Recorder(outputs, [Recipient.parse(arguments[2])], segment_seconds=3600)
    data_dir, room, recipient = arguments[:3]
    settings = load_settings({}, {"data_dir": data_dir, "cbsa_recipient": recipient})
    return SessionRecords(settings).sink(RoomId(room))


async def main(arguments: list[str]) -> None:
    await record(sink(arguments))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
