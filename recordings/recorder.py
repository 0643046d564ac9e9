"""The Recorder: the forwarding layer's recording sink. Encoded frames go, as they are,
into one live WebM file per seat and segment, encrypted with age as they are written.

Nothing is decoded or encoded: each frame is wrapped in Matroska as it is (`webm`).
A cluster is written at least every half second and every sealed age chunk
goes straight to the file (no user-space buffer), so after a crash at most about a
second of media is lost (see `CLUSTER_MS`). A segment starts on a
keyframe and rotates at the first keyframe after ``segment_seconds``; within it, the
sender is asked for a keyframe every `KEYFRAME_SECONDS`, so a replay can seek anywhere
quickly. A closed segment is made durable and hashed, and reported through ``on_segment``.

Where the sealed bytes go is the recorder's ``outputs`` (`SegmentOutputs`): files in a
directory (`FileOutputs`), or a media worker's channel to the control plane, which keeps
the record (`media.recording_outputs`).

While a segment is open, ``on_progress`` hears how many of its bytes are sealed on disk and
their SHA-256, at least every `REPORT_MS` while new bytes are sealed, so the session log
can sign them as they are written: after a crash, only what was sealed since the last
report (at most about two seconds of media) is vouched for by nothing.

A frame's pts come from its sender's RTP timing (see `timestamps`); each stream goes into
clusters of its own (see `webm.ClusterWriter`), so neither waits in memory for the other
while it lags.

Audio packets lost on the way leave a gap that browsers take for a break in the file; the
recorder fills it with silent ones (see `opus`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Protocol

from common.frames import EncodedFrame
from common.names import Kind, Seat

from . import opus, webm
from .age import CHUNK, AgeWriter
from .keys import Recipient
from .private_files import private_directory, private_opener
from .timestamps import StreamClock

DEFAULT_SEGMENT_SECONDS = 60.0
# What a crash can lose: media waits in its stream's open cluster for about CLUSTER_MS
# (a cluster ends at the first frame of its stream after it, or when it has been open
# twice that), then unsealed for at most SEAL_MS: about a second in all, whether or not
# one stream lags the other.
CLUSTER_MS = 250
SEAL_MS = 500
EBML_VOID_HEADER = 9  # ID 0xEC and an 8-byte size
# How often sealed bytes are reported, by arrival time: media is sealed within about a
# second of arriving (CLUSTER_MS + SEAL_MS), so what a report has not yet covered arrived
# at most this plus that second ago. Arrival, not pts: a sender's RTP clock may stall or
# jump, and what a crash leaves unvouched is what arrived lately.
REPORT_MS = 1000
# A browser's encoder sends a keyframe only when asked (a call's first picture, a
# receiver's loss), so a segment could hold a single one at its start; a player seeking
# into it must then decode every frame from there, and a replay that seeks while it
# plays never catches up. So the recorder asks for one whenever this long has gone by
# without: a seek decodes at most this much video. Each keyframe costs some bandwidth
# (every subscriber gets it too), so not much more often than a seek needs.
KEYFRAME_SECONDS = 2.0


def vp8_dimensions(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 section 9.1)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
    height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
    return width, height


def ebml_void(size: int) -> bytes:
    """An EBML Void element of exactly ``size`` bytes (at least its 9-byte header)."""
    if size < EBML_VOID_HEADER:
        raise ValueError(f"an EBML Void element takes at least {EBML_VOID_HEADER} bytes")
    payload = size - EBML_VOID_HEADER
    return b"\xec\x01" + payload.to_bytes(7, "big") + bytes(payload)


class SegmentFile(Protocol):
    """Where one segment's sealed bytes go, in order."""

    def write(self, data: bytes) -> int:
        """Takes all of ``data``; returns its length."""

    def close(self) -> None:
        """Makes what was written durable; the file takes nothing more."""


class SegmentOutputs(Protocol):
    """Where a recorder's segment files are created."""

    def open(self, name: str) -> SegmentFile:
        """A new, empty file ``name``; `FileExistsError` if the name is taken."""


class _DurableFile:
    """A segment file on disk: unbuffered, so every sealed chunk reaches the file as it
    is written; fsynced when closed."""

    def __init__(self, handle: BinaryIO) -> None:
        self._file = handle

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:  # an unbuffered write may take part of it
            view = view[self._file.write(view) or 0 :]
        return len(data)

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()


class FileOutputs:
    """Segment files in ``directory`` (made private), each created, never overwritten."""

    def __init__(self, directory: Path) -> None:
        self.directory = private_directory(directory)

    def open(self, name: str) -> SegmentFile:
        path = self.directory / name
        if path.name != name:
            raise ValueError(f"{name!r} is not a file name")
        return _DurableFile(open(path, "xb", buffering=0, opener=private_opener))


def segment_name(seat: Seat, index: int) -> str:
    """``<seat>-<index, five digits or more>.webm.age``."""
    return f"{seat}-{index:05d}.webm.age"


@dataclass(frozen=True)
class SegmentInfo:
    seat: Seat
    index: int
    file: str  # its name
    sha256: str
    size: int
    video_frames: int
    audio_frames: int
    duration_ms: int  # until its last frame's pts or arrival, whichever is later
    started_at_ms: (
        int  # wall clock (Unix ms) of pts 0: places the segment on the session's timeline
    )

    def listed(self) -> dict[str, Any]:
        """What the session record's ``segment`` event says of it (the media-plane
        protocol's `SegmentSealed` carries the same)."""
        return {
            "seat": self.seat.value,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "duration_ms": self.duration_ms,
            "started_at_ms": self.started_at_ms,
        }


@dataclass(frozen=True)
class MediaProgress:
    """The first ``size`` bytes of an open segment's file, sealed on disk, hash to
    ``sha256``; ``started_at_ms`` is the segment's, so a segment a crash cuts short
    (no ``segment`` event) is still placed where it began."""

    seat: Seat
    file: str  # its name
    size: int
    sha256: str
    started_at_ms: int


class SegmentWriter:
    """One seat's media for one segment."""

    def __init__(
        self,
        file: SegmentFile,
        name: str,
        index: int,
        recipients: Sequence[Recipient],
        width: int,
        height: int,
        started: float,
        started_at_ms: int = 0,
    ) -> None:
        self.name = name
        self.index = index
        self.started = started
        self.started_at_ms = started_at_ms
        self._file = file
        self._hash = hashlib.sha256()  # of what is written, so closing never re-reads
        self._written = 0
        self._reported = (0, 0)  # (bytes, arrival ms) at the last progress report
        self._age = AgeWriter(self, recipients)
        self._age.write(webm.header(width, height))
        self._clusters = webm.ClusterWriter(self._age.write, CLUSTER_MS)
        self._clocks = {Kind.VIDEO: StreamClock(), Kind.AUDIO: StreamClock()}
        self._audio: tuple[int, float] | None = None  # the latest audio packet's pts, ms
        # a sender whose RTP clock runs slow still fills the time the segment recorded
        self._last_arrival_ms = 0
        self.frames = {Kind.VIDEO: 0, Kind.AUDIO: 0}
        self.keyframe_at = started  # when the latest video keyframe arrived
        self._unsealed_since: int | None = None  # ms when unsealed media began to wait
        self._padded_at: int | None = None  # sealed-chunk count when we last padded

    def write(self, sealed: bytes) -> int:
        """Where the age writer puts sealed bytes: straight to the file, and hashed."""
        self._file.write(sealed)
        self._hash.update(sealed)
        self._written += len(sealed)
        return len(sealed)

    def progress(self, now: float) -> tuple[int, str] | None:
        """Bytes sealed so far and their SHA-256, if some were sealed since the last
        report and `REPORT_MS` has passed since it (or since the segment began)."""
        size, at_ms = self._reported
        now_ms = int((now - self.started) * 1000)
        if self._written == size or now_ms - at_ms < REPORT_MS:
            return None
        self._reported = (self._written, now_ms)
        return self._written, self._hash.copy().hexdigest()

    def add(self, kind: Kind, frame: EncodedFrame, now: float) -> None:
        if kind is Kind.VIDEO and frame.keyframe:
            self.keyframe_at = now
        arrival_ms = int((now - self.started) * 1000)
        self._last_arrival_ms = arrival_ms
        pts = self._clocks[kind].pts(frame.pts, frame.time_base, arrival_ms)
        if kind is Kind.AUDIO:
            self._fill_audio_gap(pts, arrival_ms)
            lasts = opus.packet_ms(frame.data)
            self._audio = (pts, lasts) if lasts else None
        self._mux(webm.Block(kind, pts, frame.keyframe, frame.data), arrival_ms)
        # what a crash loses is what arrived lately, whatever its pts say
        self._seal_if_waiting(arrival_ms)

    def _fill_audio_gap(self, pts: int, arrival_ms: int) -> None:
        """Silent packets where audio packets went missing before one at ``pts`` (see
        `opus`): each where the one before ends, as long as it ends by ``pts``. Only where
        browsers see a break: a gap no longer than the packet before it (a single packet
        lost, a sender whose clock runs slow) plays on as it is."""
        if self._audio is None:
            return
        last, lasts = self._audio
        if pts - last <= 2 * lasts:
            return
        at = last + lasts
        while at + opus.SILENCE_MS <= pts:
            self._mux(webm.Block(Kind.AUDIO, round(at), True, opus.SILENCE), arrival_ms)
            at += opus.SILENCE_MS

    def _mux(self, block: webm.Block, arrival_ms: int) -> None:
        self._clusters.add(block, arrival_ms)
        self.frames[block.kind] += 1

    def _seal_if_waiting(self, now_ms: int) -> None:
        """Bound what a crash can lose: the muxer hands over whole clusters (every
        CLUSTER_MS); if the age writer has held some of them back for SEAL_MS, an EBML Void
        element (skipped by every Matroska reader) fills the chunk so it is sealed now."""
        waiting = self._age.unsealed
        if self._padded_at == self._age.sealed_chunks:
            waiting -= EBML_VOID_HEADER  # the padding's own tail: no media in it
        if waiting <= 0:
            self._unsealed_since = None
        elif self._unsealed_since is None:
            self._unsealed_since = now_ms
        elif now_ms - self._unsealed_since >= SEAL_MS:
            # one byte past the chunk (the writer keeps the end back), all of it padding
            self._age.write(ebml_void(CHUNK - self._age.unsealed + EBML_VOID_HEADER))
            self._padded_at = self._age.sealed_chunks
            self._unsealed_since = None

    def close(self, seat: Seat) -> SegmentInfo:
        self._clusters.close()
        self._age.close()
        self._file.close()
        return SegmentInfo(
            seat,
            self.index,
            self.name,
            self._hash.hexdigest(),
            self._written,
            self.frames[Kind.VIDEO],
            self.frames[Kind.AUDIO],
            max(self._last_arrival_ms, *(clock.last_pts for clock in self._clocks.values())) + 1,
            self.started_at_ms,
        )


class Recorder:
    """Implements `media.types.RecordingSink` for one interview. Each seat's segments are
    numbered on from ``next_segment`` (1 if not given), past any name already taken, so a
    room recorded again never overwrites what it recorded before."""

    def __init__(
        self,
        outputs: SegmentOutputs,
        recipients: Sequence[Recipient],
        *,
        next_segment: Mapping[Seat, int] | None = None,
        segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        on_progress: Callable[[MediaProgress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not recipients:
            raise ValueError("a recording needs at least one recipient")
        if isinstance(outputs, PurePath):  # a Path's own ``open`` would pass for ours
            raise TypeError(f"segment outputs, not a path: give FileOutputs({str(outputs)!r})")
        self._outputs = outputs
        self._recipients = list(recipients)
        self._segment_seconds = segment_seconds
        self._on_segment = on_segment
        self._on_progress = on_progress
        self._clock = clock
        self._wall_clock = wall_clock
        self._open: dict[Seat, SegmentWriter] = {}
        self._next: dict[Seat, int] = dict(next_segment or {})
        self.segments: list[SegmentInfo] = []
        self.waiting_for_keyframe = 0
        self._request_keyframe: Callable[[Seat], None] = lambda seat: None

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        self._request_keyframe = request

    def on_frame(
        self, seat: Seat, kind: Kind, frame: EncodedFrame, arrived: float | None = None
    ) -> None:
        """``arrived``: when the frame arrived (the recorder's clock), if it is handed
        over later: a recording's timing follows arrival, not when it is written."""
        now = self._clock() if arrived is None else arrived
        segment = self._open.get(seat)
        if kind is Kind.VIDEO and frame.keyframe:
            if segment is not None and now - segment.started >= self._segment_seconds:
                self._close(seat)
                segment = None
            if segment is None:
                segment = self._start(seat, frame, now)
        if segment is None:
            self.waiting_for_keyframe += 1
            if kind is Kind.VIDEO:
                self._request_keyframe(seat)
            return
        if kind is Kind.VIDEO and (
            now - segment.started >= self._segment_seconds  # the next segment starts on it
            or (not frame.keyframe and now - segment.keyframe_at >= KEYFRAME_SECONDS)
        ):
            self._request_keyframe(seat)
        segment.add(kind, frame, now)
        if self._on_progress is not None:
            progress = segment.progress(now)
            if progress is not None:
                self._on_progress(
                    MediaProgress(seat, segment.name, *progress, segment.started_at_ms)
                )

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        if not present and seat in self._open:
            self._close(seat)

    def _start(self, seat: Seat, keyframe: EncodedFrame, now: float) -> SegmentWriter | None:
        size = vp8_dimensions(keyframe.data)
        if size is None:
            return None
        index = max(1, self._next.get(seat, 1))
        while True:
            try:
                file = self._outputs.open(segment_name(seat, index))
                break
            except FileExistsError:  # a reopened room carries on the numbering
                index += 1
        self._next[seat] = index + 1
        try:
            segment = SegmentWriter(
                file,
                segment_name(seat, index),
                index,
                self._recipients,
                *size,
                started=now,
                started_at_ms=round((self._wall_clock() - (self._clock() - now)) * 1000),
            )
        except BaseException:  # its header could not be written: the file is not left open
            with contextlib.suppress(Exception):
                file.close()
            raise
        self._open[seat] = segment
        return segment

    def _close(self, seat: Seat) -> None:
        segment = self._open.pop(seat)
        info = segment.close(seat)
        self.segments.append(info)
        if self._on_segment is not None:
            self._on_segment(info)

    def close(self) -> None:
        """Seal every open segment; safe to call twice."""
        for seat in list(self._open):
            self._close(seat)
