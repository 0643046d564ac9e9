"""Where a media worker's recorder puts its segments: on the channel to the control plane,
which keeps the session record (`server.received_media`). The worker writes no media to
disk: each sealed age chunk is sent as it is written (`protocol.SegmentBytes`), so the
control plane's copy is at most moments behind, and a worker that dies loses only what
it had not yet sealed. Progress and sealed segments follow on the same channel, in order
after their bytes (`protocol.MediaProgress`, `protocol.SegmentSealed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from common.names import Seat
from recordings.keys import Recipient
from recordings.recorder import (
    DEFAULT_SEGMENT_SECONDS,
    MediaProgress,
    Recorder,
    SegmentFile,
    SegmentInfo,
)

from . import protocol

Send = Callable[[protocol.Message], None]


class ChannelFile:
    """One segment file, sent as `protocol.SegmentBytes` at the offset each write
    starts at."""

    def __init__(self, room: str, name: str, send: Send) -> None:
        self._room = room
        self._name = name
        self._send = send
        self._offset = 0
        self._closed = False

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError(f"write to {self._name} after it was closed")
        self._send(
            protocol.SegmentBytes(room=self._room, file=self._name, offset=self._offset, data=data)
        )
        self._offset += len(data)
        return len(data)

    def close(self) -> None:
        """Nothing to flush: every byte is sent as it is written; the control plane makes
        the file durable when the `protocol.SegmentSealed` that follows arrives."""
        self._closed = True


class ChannelOutputs:
    """The room's segment files, sent with ``send``. A name is opened once: numbering
    past names an earlier placement of the room used is `protocol.PlaceRoom.next_segment`'s
    business (the worker cannot see the control plane's directory)."""

    def __init__(self, room: str, send: Send) -> None:
        self._room = room
        self._send = send
        self._opened: set[str] = set()

    def open(self, name: str) -> SegmentFile:
        if name in self._opened:
            raise FileExistsError(f"{name} was opened already")
        self._opened.add(name)
        return ChannelFile(self._room, name, self._send)


def sealed_message(room: str, info: SegmentInfo) -> protocol.SegmentSealed:
    return protocol.SegmentSealed(room=room, **info.listed() | {"seat": info.seat})


def progress_message(room: str, progress: MediaProgress) -> protocol.MediaProgress:
    return protocol.MediaProgress(
        room=room,
        seat=progress.seat,
        file=progress.file,
        size=progress.size,
        sha256=progress.sha256,
        started_at_ms=progress.started_at_ms,
    )


def recording(
    room: str,
    send: Send,
    recipients: Sequence[Recipient],
    next_segment: Mapping[Seat, int] | None = None,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
) -> Recorder:
    """A recorder for ``room`` whose files, progress and sealed segments all go out with
    ``send``."""
    return Recorder(
        ChannelOutputs(room, send),
        recipients,
        next_segment=next_segment,
        on_segment=lambda info: send(sealed_message(room, info)),
        on_progress=lambda progress: send(progress_message(room, progress)),
        segment_seconds=segment_seconds,
    )
