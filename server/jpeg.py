"""Is this a JPEG image we can show? Decoded with FFmpeg (PyAV), not judged by its first
bytes: an ID still is shown to officers and sealed in the record, so it must be a picture.

Decoding is CPU work: callers run `check_jpeg` in a thread. The size is read from the
frame header before anything is decoded, so a small file that declares a huge picture
costs nothing; FFmpeg is held to the same pixel count in case its decoder reads another
header than the first.
"""

from __future__ import annotations

import av

MAX_SIDE = 8192
JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
# Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC, which share the range).
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_START_OF_SCAN = 0xDA
_UNSIZED_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length


class JpegError(ValueError):
    """The bytes are not a JPEG image within bounds. ``template`` may name ``{fields}``
    (as the web layer's errors do, so that it can be translated before it is filled)."""

    def __init__(self, template: str, **fields: object) -> None:
        self.template = template
        self.fields = fields
        super().__init__(template.format(**fields))


def check_jpeg(data: bytes) -> tuple[int, int]:
    """The image's width and height once decoded; JpegError if it is not a whole JPEG
    image of at most ``MAX_SIDE`` pixels a side."""
    if not data.startswith(JPEG_START) or not data.rstrip(b"\0").endswith(JPEG_END):
        raise JpegError("the still is not a complete JPEG image")
    width, height = declared_size(data)
    _check_size(width, height)
    codec = av.CodecContext.create("mjpeg", "r")
    codec.options = {"max_pixels": str(MAX_SIDE * MAX_SIDE)}
    try:
        frames = codec.decode(av.Packet(data))
    except av.FFmpegError:
        raise JpegError("the still is not a JPEG image that can be decoded") from None
    if len(frames) != 1:
        raise JpegError("the still is not a JPEG image that can be decoded")
    _check_size(frames[0].width, frames[0].height)
    return frames[0].width, frames[0].height


def declared_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first frame header, walking the marker segments."""
    at = len(JPEG_START)
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _UNSIZED_MARKERS:
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in _FRAME_MARKERS and length >= 8 and at + 9 <= len(data):
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return width, height
        if marker == _START_OF_SCAN or length < 2:
            break
        at += 2 + length
    raise JpegError("the still is not a JPEG image that can be decoded")


def _check_size(width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise JpegError(
            "the still is {width}x{height} pixels; at most {most} on each side",
            width=width,
            height=height,
            most=MAX_SIDE,
        )
