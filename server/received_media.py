"""The control plane's side of recording: the sealed (age-encrypted) bytes a media
worker sends as its recorder writes them (`media.recording_outputs`) go into the room's
session record, its progress reports and sealed segments into the record's log, exactly
as a recorder in this process would have written them (`SessionRecords.sink`).

The control plane cannot read what it stores: it checks only that the bytes arrive in
order and that a sealed segment is what it received. A file whose bytes do not follow on
is refused from then on; what it holds so far is listed as recovered, as is every file a
worker leaves open when it is lost or its recording fails (`record_recovery`), so the
record still verifies and says how much of each file was signed while it was written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from common.errors import Conflict
from common.names import RoomId, Seat
from media import protocol
from recordings.private_files import private_opener
from recordings.recorder import MediaProgress, SegmentInfo

from .record_recovery import SEGMENT_NAME, recovered_listing, segment_seat
from .session_records import SessionRecords

log = logging.getLogger(__name__)

FAILED = "recording_failed"
"""The event saying a room's recording, or one file of it, stopped before its end."""


@dataclass
class _Incoming:
    """A segment file being received."""

    seat: Seat
    path: Path
    handle: BinaryIO
    digest: Any = field(default_factory=hashlib.sha256)  # of every byte received
    received: int = 0
    last_report: dict[str, Any] | None = None  # the fields of its last ``media`` event

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may take part of it
            view = view[self.handle.write(view) or 0 :]
        self.digest.update(data)
        self.received += len(data)

    def close(self) -> None:
        if not self.handle.closed:
            try:
                os.fsync(self.handle.fileno())
            finally:
                self.handle.close()


class ReceivedMedia:
    """Media a worker sends for rooms recorded in ``records``, one method per message."""

    def __init__(self, records: SessionRecords) -> None:
        self._records = records
        self._incoming: dict[tuple[RoomId, str], _Incoming] = {}
        self._refused: set[tuple[RoomId, str]] = set()

    def bytes(self, msg: protocol.SegmentBytes) -> None:
        room, key = RoomId(msg.room), (RoomId(msg.room), msg.file)
        if key in self._refused:
            return
        seat = segment_seat(msg.file)
        if seat is None:
            self._refuse(room, msg.file, None, f"{msg.file} is not a seat's segment")
            return
        incoming = self._incoming.get(key)
        if incoming is None:
            if msg.offset != 0:
                reason = f"{msg.file} was first sent from byte {msg.offset}, not its start"
                self._refuse(room, msg.file, seat, reason)
                return
            try:
                path = self._records.record_directory(room) / msg.file
                handle = open(path, "xb", buffering=0, opener=private_opener)  # noqa: SIM115 - closed by _Incoming.close
            except Conflict as exc:  # the server is stopping: nothing more is recorded
                log.error("media for %s refused: %s", room, exc)
                self._refused.add(key)
                return
            except OSError as exc:  # FileExistsError: never overwrite what a record holds
                self._refuse(room, msg.file, seat, f"{msg.file} cannot be created: {exc}")
                return
            incoming = self._incoming[key] = _Incoming(seat, path, handle)
        if msg.offset != incoming.received:
            reason = (
                f"bytes of {msg.file} were sent at offset {msg.offset} after "
                f"{incoming.received} bytes: some are missing or repeated"
            )
            self._refuse(room, msg.file, seat, reason)
            return
        try:
            incoming.append(msg.data)
        except OSError as exc:  # this disk is full: the worker's recording goes on
            self._refuse(room, msg.file, seat, f"{msg.file} cannot be written: {exc}")

    def progress(self, msg: protocol.MediaProgress) -> None:
        room, key = RoomId(msg.room), (RoomId(msg.room), msg.file)
        incoming = self._incoming.get(key)
        if incoming is None:
            if key not in self._refused:
                log.error("media progress of %s in %s, which is not being received", *key[::-1])
            return
        if msg.size > incoming.received:
            reason = (
                f"the worker reports {msg.size} bytes of {msg.file} sealed, but "
                f"{incoming.received} arrived"
            )
            self._refuse(room, msg.file, msg.seat, reason)
            return
        progress = MediaProgress(msg.seat, msg.file, msg.size, msg.sha256, msg.started_at_ms)
        self._write(self._records.media_progress, room, progress)
        incoming.last_report = {
            "size": msg.size,
            "sha256": msg.sha256,
            "started_at_ms": msg.started_at_ms,
        }

    def sealed(self, msg: protocol.SegmentSealed) -> None:
        room, key = RoomId(msg.room), (RoomId(msg.room), msg.file)
        incoming = self._incoming.pop(key, None)
        if incoming is None:
            if key not in self._refused:
                log.error("segment %s of %s sealed, but none of it arrived", msg.file, room)
                self._failed_event(room, msg.seat, msg.file, "sealed, but none of it arrived")
            return
        incoming.close()
        received = incoming.digest.hexdigest()
        if (incoming.received, received) != (msg.size, msg.sha256):
            reason = (
                f"{msg.file} was sealed at {msg.size} bytes (SHA-256 {msg.sha256}), but what "
                f"arrived is {incoming.received} bytes (SHA-256 {received})"
            )
            log.error("segment of %s does not match what arrived: %s", room, reason)
            self._list_recovered(room, incoming)
            self._failed_event(room, msg.seat, msg.file, reason)
            return
        match = SEGMENT_NAME.fullmatch(msg.file)
        index = int(match["index"]) if match is not None else 0
        info = SegmentInfo(
            msg.seat,
            index,
            msg.file,
            msg.sha256,
            msg.size,
            msg.video_frames,
            msg.audio_frames,
            msg.duration_ms,
            msg.started_at_ms,
        )
        self._write(self._records.segment_sealed, room, info)

    def failed(self, msg: protocol.RecordingFailed) -> None:
        """The room's recording stopped on the worker (the call goes on): whatever of it
        is still open here will not be sealed, and is listed as it is."""
        room = RoomId(msg.room)
        log.error("the recording of %s stopped on its media worker: %s", room, msg.reason)
        self._close_room(room)
        self._failed_event(room, msg.seat, None, msg.reason)

    def lost(self, room: str) -> list[str]:
        """The worker recording ``room`` is gone: every file of it still open is made
        durable and listed as recovered; their names."""
        return self._close_room(RoomId(room))

    def next_segment(self, room: str) -> dict[Seat, int]:
        """Per seat, the number after the highest of the seat's files in the record, for
        `protocol.PlaceRoom.next_segment`: a room placed again never reuses a name."""
        directory = self._records.directory / room
        following: dict[Seat, int] = {}
        if not directory.is_dir():
            return following
        for path in directory.glob("*.webm.age"):
            seat, match = segment_seat(path.name), SEGMENT_NAME.fullmatch(path.name)
            if seat is not None and match is not None:
                following[seat] = max(following.get(seat, 1), int(match["index"]) + 1)
        return following

    def _close_room(self, room: RoomId) -> list[str]:
        listed = []
        for key in [key for key in self._incoming if key[0] == room]:
            self._list_recovered(room, self._incoming.pop(key))
            listed.append(key[1])
        return listed

    def _refuse(self, room: RoomId, file: str, seat: Seat | None, reason: str) -> None:
        """Take nothing more of ``file``; what arrived of it is listed as it is."""
        log.error("media for %s refused: %s", room, reason)
        self._refused.add((room, file))
        incoming = self._incoming.pop((room, file), None)
        if incoming is not None:
            self._list_recovered(room, incoming)
        self._failed_event(room, seat, file, reason)

    def _list_recovered(self, room: RoomId, incoming: _Incoming) -> None:
        self._refused.add((room, incoming.path.name))  # listed: it takes nothing more
        try:
            incoming.close()
        except OSError as exc:
            log.error("%s could not be made durable: %s", incoming.path.name, exc)
        kind, fields = recovered_listing(incoming.path, incoming.last_report)
        self._write(self._records.append_soon, room, kind, **fields)

    def _failed_event(self, room: RoomId, seat: Seat | None, file: str | None, reason: str) -> None:
        # ``segment``, not ``file``: the event does not list the file (it names it)
        named = {"segment": file} if file is not None else {}
        seat_value = seat.value if seat is not None else None
        self._write(
            self._records.append_soon, room, FAILED, seat=seat_value, reason=reason, **named
        )

    @staticmethod
    def _write(write: Callable[..., None], room: RoomId, *args: Any, **fields: Any) -> None:
        """An event into the room's log; once the server is stopping there is none to
        write to, and the worker's channel must not fail on it."""
        try:
            write(room, *args, **fields)
        except Conflict as exc:
            log.error("an event of %s was not written: %s", room, exc)
