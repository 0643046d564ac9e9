"""Run by tests/test_recorder.py in its own process: records a synthetic seat until it
is killed with SIGKILL. Prints "recording" once the first segment is open, then one
line per second with the number of video frames recorded so far."""

from __future__ import annotations

import random
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

from common.frames import EncodedFrame
from common.names import Kind, Seat
from recordings.keys import Recipient
from recordings.recorder import Recorder


def clip(frames: int = 30) -> list[bytes]:
    """A second of 320x240 video at an interview's bitrate (noise keeps it near 800 kbps)."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base, codec.gop_size, codec.bit_rate = Fraction(1, 30), frames, 800_000
    noise = random.Random(5)
    packets: list[bytes] = []
    for n in range(frames):
        picture = av.VideoFrame(320, 240, "yuv420p")
        picture.planes[0].update(noise.randbytes(320 * 240))
        picture.planes[1].update(bytes([128]) * (320 * 240 // 4))
        picture.planes[2].update(bytes([128]) * (320 * 240 // 4))
        picture.pts = n
        packets += [bytes(p) for p in codec.encode(picture)]
    return packets + [bytes(p) for p in codec.encode(None)]


def main() -> None:
    directory, recipient = Path(sys.argv[1]), Recipient.parse(sys.argv[2])
    video = clip()
    recorder = Recorder(directory, [recipient], segment_seconds=3600)
    started = time.monotonic()
    n = 0
    while True:
        frame = EncodedFrame(
            video[n % len(video)], n * 3000, Fraction(1, 90000), n % len(video) == 0
        )
        recorder.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
        n += 1
        if n == 1:
            print("recording", flush=True)
        if n % 30 == 0:
            print(n, flush=True)
        time.sleep(max(0.0, started + n / 30 - time.monotonic()))


if __name__ == "__main__":
    main()
