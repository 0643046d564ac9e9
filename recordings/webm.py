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
time to the next frame: a video cluster ends where a video frame begins the next (or at a
keyframe), so even its last frame's is known. Then no spacing of frames, however
irregular, reads as a break (frames moved up close together by `timestamps` included).
When video stops for a while (a camera turned off), the cluster is closed anyway and its
last frame lasts until then. Audio needs none: browsers take an Opus block's duration
from its packet, whatever BlockDuration says (so the recorder fills a gap in the audio
with silent packets instead, see `opus`).
Each track's blocks are given in time order and go into clusters of their own
(`ClusterWriter`); a cluster is written whole when it closes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from common.names import Kind

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
    """Gathers each track's blocks, given in time order, into clusters of that track
    alone of about ``cluster_ms``, and hands each to ``write`` whole, as it closes.

    One track a cluster, because browsers' WebM parsers want blocks in time order within a
    cluster (whatever their track) and each track's in time order, but take a cluster that
    begins earlier than the one before it. So neither stream waits in memory for the other
    to catch up (a crash would take what waits): a stream lagging the other, its sender's
    pacer holding it back or its packets resent, goes to disk as it comes, keeping its
    place on the timeline. The cost: a file's blocks are not in time order across tracks,
    so a reader that plays a file as it reads it holds the leading stream while the other
    lags (MSE, which buffers the whole append, and libavformat do)."""

    def __init__(self, write: Callable[[bytes], object], cluster_ms: int) -> None:
        self._write = write
        self._cluster_ms = cluster_ms
        self._open: dict[Kind, list[Block]] = {Kind.VIDEO: [], Kind.AUDIO: []}
        self._opened_at = {Kind.VIDEO: 0, Kind.AUDIO: 0}  # arrival ms of each's first block
        self._last_video: Block | None = None  # the latest video frame, in any cluster
        self._last_video_at = 0  # when it arrived (ms)
        self._video_step = DEFAULT_VIDEO_MS  # the latest interval between video frames
        self._previous_video_pts = 0  # of the latest video frame written

    def add(self, block: Block, arrival_ms: int) -> None:
        """Takes a block that arrived at ``arrival_ms`` (the segment's clock)."""
        blocks = self._open[block.kind]
        if blocks and block.pts - blocks[0].pts >= self._cluster_ms:
            self._flush(block.kind, len(blocks), block.pts)  # its last frame lasts until this
        elif blocks and block.kind is Kind.VIDEO and block.keyframe:
            self._flush(block.kind, len(blocks), block.pts)
        if block.kind is Kind.VIDEO:
            if self._last_video is not None and block.pts > self._last_video.pts:
                self._video_step = block.pts - self._last_video.pts
            self._last_video, self._last_video_at = block, arrival_ms
        if not self._open[block.kind]:
            self._opened_at[block.kind] = arrival_ms
        self._open[block.kind].append(block)
        for kind in (Kind.VIDEO, Kind.AUDIO):
            if self._open[kind] and arrival_ms - self._opened_at[kind] >= 2 * self._cluster_ms:
                self._flush_stale(kind, arrival_ms)

    def close(self) -> None:
        """Writes what is gathered; the last video frame lasts as long as the one before."""
        end = self._last_video.pts + self._video_step if self._last_video else 0
        self._flush(Kind.VIDEO, len(self._open[Kind.VIDEO]), end)
        self._flush(Kind.AUDIO, len(self._open[Kind.AUDIO]), 0)

    def _flush_stale(self, kind: Kind, now_ms: int) -> None:
        """A track's cluster open for twice its length (what a crash would lose grows):
        a stream stopped (a camera or microphone turned off) or sends little. A video
        cluster ends before its last frame, which begins the next (so the one before lasts
        exactly until it); or, if that frame is the cluster's first, with that frame
        lasting until now (only a pause in the video this long reads as a break, and video
        starts again at a keyframe soon after)."""
        blocks = self._open[kind]
        if kind is Kind.AUDIO:
            self._flush(kind, len(blocks), 0)
        elif len(blocks) > 1:
            self._flush(kind, len(blocks) - 1, blocks[-1].pts)
            self._opened_at[kind] = self._last_video_at
        else:
            self._flush(kind, 1, blocks[0].pts + max(1, now_ms - self._last_video_at))

    def _flush(self, kind: Kind, count: int, video_until: int) -> None:
        """Writes the first ``count`` blocks of ``kind`` as a cluster; the last video
        frame among them lasts until ``video_until``."""
        blocks = self._open[kind][:count]
        self._open[kind] = self._open[kind][count:]
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
