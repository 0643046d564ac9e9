"""Live WebM written here, block by block, for a seat's VP8 video and Opus audio as they
were encoded in the participant's browser.

Not libavformat's muxer, because of what browsers' WebM parsers (Media Source
Extensions, the audit console's replay) make of a SimpleBlock's duration: within a
cluster it is the time to the track's next block, but the last video block of a cluster
gets an estimate (the longest frame interval seen so far). If the next cluster's first
video frame comes later than twice that, MSE takes it for a discontinuity and drops every
video frame until the next keyframe: the picture freezes while the clock runs on. A
browser's camera frames come irregularly (its encoder skips frames under load, the
network delays some), so this happened within seconds of every real recording, and
libavformat writes BlockDuration for subtitles only.

So here every video frame is written as a BlockGroup with its exact BlockDuration, the
time to the next frame: a cluster ends where a video frame begins the next (or at a
keyframe), so even its last frame's is known. Then no spacing of frames, however
irregular, reads as a break (frames moved up close together by `timestamps` included).
When video stops for a while (a camera turned off), the cluster is closed anyway and its
last frame lasts until then. Audio needs none: browsers take an Opus block's duration
from its packet, whatever BlockDuration says (so the recorder fills a gap in the audio
with silent packets instead, see `opus`).
Blocks must be given in time order across both tracks (`timestamps.Interleaver`); a
cluster is written whole when it closes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from signalling.types import Kind

from .streams import OPUS_RATE, opus_head

TRACKS = {Kind.VIDEO: 1, Kind.AUDIO: 2}
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # a live Segment: its end is not known
OPUS_SEEK_PRE_ROLL_NS = 80_000_000  # RFC 7845: decode 80 ms before a seek target
DEFAULT_VIDEO_MS = 33  # a lone video frame's duration when nothing tells it (30 fps)


def size_bytes(size: int) -> bytes:
    """An EBML element size in as few bytes as it takes (all ones is reserved)."""
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | size).to_bytes(length, "big")
    raise ValueError("an EBML element is at most 2**56 - 2 bytes")


def element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + size_bytes(len(payload)) + payload


def uint(element_id: bytes, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def sint(element_id: bytes, value: int) -> bytes:
    return element(element_id, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def header(width: int, height: int) -> bytes:
    """The EBML header, the start of a Segment of unknown size, its Info and Tracks."""
    ebml = element(
        b"\x1a\x45\xdf\xa3",
        uint(b"\x42\x86", 1)  # EBMLVersion
        + uint(b"\x42\xf7", 1)  # EBMLReadVersion
        + uint(b"\x42\xf2", 4)  # EBMLMaxIDLength
        + uint(b"\x42\xf3", 8)  # EBMLMaxSizeLength
        + element(b"\x42\x82", b"webm")  # DocType
        + uint(b"\x42\x87", 4)  # DocTypeVersion
        + uint(b"\x42\x85", 2),  # DocTypeReadVersion
    )
    info = element(
        b"\x15\x49\xa9\x66",
        uint(b"\x2a\xd7\xb1", 1_000_000)  # TimestampScale: 1 ms
        + element(b"\x4d\x80", b"nexus-interview recorder")  # MuxingApp
        + element(b"\x57\x41", b"nexus-interview recorder"),  # WritingApp
    )
    video = element(
        b"\xae",
        uint(b"\xd7", TRACKS[Kind.VIDEO])  # TrackNumber
        + uint(b"\x73\xc5", TRACKS[Kind.VIDEO])  # TrackUID
        + uint(b"\x83", 1)  # TrackType: video
        + uint(b"\x9c", 0)  # FlagLacing
        + element(b"\x86", b"V_VP8")  # CodecID
        + element(b"\xe0", uint(b"\xb0", width) + uint(b"\xba", height)),  # Video
    )
    audio = element(
        b"\xae",
        uint(b"\xd7", TRACKS[Kind.AUDIO])
        + uint(b"\x73\xc5", TRACKS[Kind.AUDIO])
        + uint(b"\x83", 2)  # TrackType: audio
        + uint(b"\x9c", 0)
        + element(b"\x86", b"A_OPUS")
        + element(b"\x63\xa2", opus_head())  # CodecPrivate
        + uint(b"\x56\xaa", 0)  # CodecDelay: the OpusHead has no pre-skip
        + uint(b"\x56\xbb", OPUS_SEEK_PRE_ROLL_NS)  # SeekPreRoll
        + element(
            b"\xe1",
            element(b"\xb5", struct.pack(">d", OPUS_RATE))  # SamplingFrequency
            + uint(b"\x9f", 2),  # Channels
        ),
    )
    tracks = element(b"\x16\x54\xae\x6b", video + audio)
    return ebml + b"\x18\x53\x80\x67" + UNKNOWN_SIZE + info + tracks


@dataclass(frozen=True, slots=True)
class Block:
    kind: Kind
    pts: int  # ms
    keyframe: bool
    data: bytes


class ClusterWriter:
    """Gathers blocks, given in time order, into clusters of about ``cluster_ms`` and
    hands each to ``write`` whole, as it closes."""

    def __init__(self, write: Callable[[bytes], object], cluster_ms: int) -> None:
        self._write = write
        self._cluster_ms = cluster_ms
        self._blocks: list[Block] = []
        self._last_video: Block | None = None  # the latest video frame, in any cluster
        self._video_step = DEFAULT_VIDEO_MS  # the latest interval between video frames
        self._previous_video_pts = 0  # of the latest video frame written

    def add(self, block: Block) -> None:
        if self._blocks:
            age = block.pts - self._blocks[0].pts
            if block.kind is Kind.VIDEO and (age >= self._cluster_ms or block.keyframe):
                self._flush(len(self._blocks), block.pts)  # its last frame lasts until this
            elif age >= 2 * self._cluster_ms:
                self._flush_sparse(block.pts)
        if block.kind is Kind.VIDEO:
            if self._last_video is not None and block.pts > self._last_video.pts:
                self._video_step = block.pts - self._last_video.pts
            self._last_video = block
        self._blocks.append(block)

    def close(self) -> None:
        """Writes what is gathered; the last video frame lasts as long as the one before."""
        end = self._last_video.pts + self._video_step if self._last_video else 0
        self._flush(len(self._blocks), end)

    def _flush_sparse(self, now: int) -> None:
        """No video frame has come to end the cluster: it ends before its last one, which
        begins the next (so the one before lasts exactly until it); or, if that frame is
        the cluster's first, with that frame lasting until ``now`` (at least twice the
        cluster's length: only a pause in the video more than twice that reads as a break,
        a camera turned off, and video starts again at a keyframe soon after)."""
        last = max((i for i, b in enumerate(self._blocks) if b.kind is Kind.VIDEO), default=0)
        if last > 0:
            self._flush(last, self._blocks[last].pts)
        else:
            self._flush(len(self._blocks), now)

    def _flush(self, count: int, video_until: int) -> None:
        """Writes the first ``count`` blocks as a cluster; the last video frame among them
        lasts until ``video_until``."""
        blocks, self._blocks = self._blocks[:count], self._blocks[count:]
        if not blocks:
            return
        start = blocks[0].pts
        parts = [uint(b"\xe7", start)]  # Timestamp
        videos = [block.pts for block in blocks if block.kind is Kind.VIDEO]
        ends = iter([*videos[1:], video_until])  # each video frame lasts until the next
        for block in blocks:
            relative = struct.pack(">h", block.pts - start)
            track = size_bytes(TRACKS[block.kind])[-1:]  # a one-byte track number
            if block.kind is Kind.AUDIO:  # an Opus packet says how long it lasts
                parts.append(element(b"\xa3", track + relative + b"\x80" + block.data))
                continue
            group = element(b"\xa1", track + relative + b"\x00" + block.data)  # Block
            group += uint(b"\x9b", max(1, next(ends) - block.pts))  # BlockDuration
            if not block.keyframe:  # ReferenceBlock: it is decoded from the frame before
                group += sint(b"\xfb", min(-1, self._previous_video_pts - block.pts))
            parts.append(element(b"\xa0", group))
            self._previous_video_pts = block.pts
        self._write(element(b"\x1f\x43\xb6\x75", b"".join(parts)))
