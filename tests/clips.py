"""Encoded video for the recorder's tests: real VP8 from libvpx, at an interview's
bitrate."""

from __future__ import annotations

import random
from fractions import Fraction

import av


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
