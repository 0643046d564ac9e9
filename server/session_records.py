"""Each interview's session record, kept as its room runs: the room's events go into the
signed event log, its media into the record's directory (from a media worker, through
`server.received_media`, or from a recorder in this process: `SessionRecords.sink`),
sealed segments into the log. Once a
session is over, it is listed in the server-wide log of closed sessions
(`recordings.closed_sessions`), which shows a session rolled back or deleted whole.

The interview server holds only public recipients (from settings) and its own checkpoint
signing key; it writes what it cannot read back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from common.errors import Conflict, NotFound
from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from media.types import NullSink, RecordingSink
from recordings.age import encrypt
from recordings.closed_sessions import CLOSED_SESSIONS, ClosedSessionsLog
from recordings.errors import RecordingError
from recordings.group_commit import GroupCommit
from recordings.keys import Recipient
from recordings.private_files import (
    create_once,
    replace_privately,
)
from recordings.record_completeness import AFTER_FINAL, FINAL_EVENTS
from recordings.recorder import FileOutputs, MediaProgress, Recorder, SegmentInfo
from recordings.session_record import (
    EVENTS,
    SessionLog,
    session_origin,
)
from recordings.tlog import NoteSigner, NoteVerifier

from .record_recovery import Recovery, after_crash
from .settings import Settings

log = logging.getLogger(__name__)

SIGNER_NAME = "nexus-interview-server"
_TAIL_BYTES = 64 * 1024


def checkpoint_signer(path: Path, name: str = SIGNER_NAME) -> NoteSigner:
    """An Ed25519 checkpoint key (the server's, by default), made on first start (0600)."""
    if path.exists():
        pem = path.read_bytes()
    else:  # two processes starting at once both make one: the first to land is the key
        fresh = Ed25519PrivateKey.generate()
        pem = create_once(
            path, fresh.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 key")
    return NoteSigner(name, key)


class _Recording:
    """The room's recording sink: the recorder, until the interview's recording stops
    (`SessionRecords.stop_recording`); frames after that are not kept, so that no
    segment is listed after the event that ends the interview."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder: Recorder | None = recorder

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None:
        if self._recorder is not None:
            self._recorder.on_frame(seat, kind, frame)

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        if self._recorder is not None:
            self._recorder.on_publisher_change(seat, kind, present)

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        if self._recorder is not None:
            self._recorder.set_keyframe_requester(request)

    def stop(self) -> None:
        """Seal every open segment (their events are written now) and keep no more;
        safe twice."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()


@dataclass
class _Open:
    commits: GroupCommit
    recorder: _Recording | None = None  # made by the first `SessionRecords.sink`
    stopped: bool = False  # `SessionRecords.stop_recording`: no recorder from now on

    def stop_recording(self) -> None:
        self.stopped = True
        if self.recorder is not None:
            self.recorder.stop()


class SessionRecords:
    """Events are written as they come and committed in groups (`recordings.group_commit`):
    a room's events are fire-and-forget, a request's are awaited until a checkpoint on disk
    covers them, and ending a session waits for its final checkpoint."""

    def __init__(self, settings: Settings) -> None:
        self.directory = settings.data_dir / "records"
        self.signer = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem")
        self._log_name = urlsplit(settings.public_url).netloc
        self._recipients = [
            Recipient.parse(text)
            for text in (settings.cbsa_recipient, settings.cbp_recipient, settings.audit_recipient)
            if text
        ]
        if not self._recipients:
            log.warning("no recipients configured: interviews are logged but not recorded")
        self._open: dict[RoomId, _Open] = {}
        self._ending: set[asyncio.Task[None]] = set()  # final commits of ended sessions
        self._closed = False
        self._closed_log: ClosedSessionsLog | None = None  # opened when first needed
        self._closed_log_lock = asyncio.Lock()  # one listing at a time; none after close_all

    def _session(self, room_id: RoomId) -> _Open:
        if self._closed:
            raise Conflict("the server is shutting down; nothing more is recorded")
        session = self._open.get(room_id)
        if session is None:
            directory = self.directory / room_id
            origin = session_origin(self._log_name, room_id)
            commits = GroupCommit(SessionLog(directory, origin, self.signer))
            session = self._open[room_id] = _Open(commits)
        return session

    def record_directory(self, room_id: RoomId) -> Path:
        """Where the room's record is kept, its session opened (media received for the
        room goes there, and its events through `append_soon`)."""
        return self._session(room_id).commits.log.directory

    @property
    def recipients(self) -> list[Recipient]:
        """Who may decrypt the media (public keys); none: nothing is recorded."""
        return list(self._recipients)

    def has_log(self, room_id: RoomId) -> bool:
        return (self.directory / room_id / EVENTS).exists()

    def last_written(self, room_id: RoomId) -> datetime | None:
        """When a file of the record was last written (after a crash: about when the
        server stopped)."""
        times = [path.stat().st_mtime for path in (self.directory / room_id).glob("*.age")]
        return datetime.fromtimestamp(max(times), UTC) if times else None

    def journal(self, room_id: RoomId) -> list[dict[str, Any]]:
        """The session log's events as written (read after `recover`: all signed)."""
        path = self.directory / room_id / EVENTS
        if not path.exists():
            return []
        return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line]

    async def recover(self, room_id: RoomId) -> Recovery:
        """At start, for an interview whose log a crash may have left: cut the events no
        checkpoint signed, list every file no kept event names, and return once a
        checkpoint covers them. The session is left open, as the crash left it (a log
        that had ended stays closed), so events carry on in the same log; recording
        carries on in new files, never in a recovered one."""
        if room_id in self._open:
            raise Conflict(
                "the session record of {room} is open already: recover it before anything "
                "writes to it",
                room=room_id,
            )
        directory = self.directory / room_id
        if not (directory / EVENTS).exists():
            raise NotFound("there is no session record of {room}", room=room_id)
        verifier = NoteVerifier.parse(self.signer.verifier_key)
        found = await asyncio.to_thread(after_crash, directory, verifier)
        if found.recovery.ended and not found.listings:
            return found.recovery
        session = self._session(room_id)
        for kind, fields in found.listings:
            session.commits.append(kind, **fields)
        await session.commits.durable(session.commits.log.size - 1)
        if found.recovery.ended:  # listed, and closed again without a second ``end``
            self._open.pop(room_id)
            await session.commits.close()
        return found.recovery

    def sink(self, room_id: RoomId) -> RecordingSink:
        """A recorder in this process writing into the room's record (its segments and
        progress reported into the log); made on first call, and none once the room's
        recording has stopped or if no recipient is configured."""
        session = self._session(room_id)
        if session.recorder is None and self._recipients and not session.stopped:
            commits = session.commits
            session.recorder = _Recording(
                Recorder(
                    FileOutputs(commits.log.directory),
                    self._recipients,
                    on_segment=lambda info: self._sealed(commits, info),
                    on_progress=lambda progress: self._progress(commits, progress),
                )
            )
        return session.recorder if session.recorder is not None else NullSink()

    def append_soon(self, room_id: RoomId, kind: str, **fields: Any) -> None:
        """An event written now and committed soon after, without waiting for it, the
        way the media path's seals and progress reports are written (they are bound to
        their session's commits: see `_session`)."""
        self._session(room_id).commits.append(kind, **fields)

    async def append(self, room_id: RoomId, kind: str, **fields: Any) -> None:
        """An event from outside the room (consent, decision); returns once a checkpoint
        covering it is on disk."""
        commits = self._session(room_id).commits
        await commits.durable(commits.append(kind, **fields))

    async def sealed_file(
        self, room_id: RoomId, name: str, plaintext: str | bytes
    ) -> dict[str, Any]:
        """Write ``plaintext`` encrypted to the recipients (in a thread: a still is
        megabytes, and the file is fsynced); its name, hash and size."""
        if not self._recipients:
            return {}
        directory = self._session(room_id).commits.log.directory
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        sealed = await asyncio.to_thread(self._seal, directory / name, data)
        return {"file": name, "sha256": hashlib.sha256(sealed).hexdigest(), "size": len(sealed)}

    def _seal(self, path: Path, plaintext: bytes) -> bytes:
        sealed = encrypt(plaintext, self._recipients)
        replace_privately(path, sealed)
        return sealed

    def segment_sealed(self, room_id: RoomId, info: SegmentInfo) -> None:
        """A segment of the room's media was sealed (whichever process recorded it): its
        ``segment`` event, written now and committed soon."""
        self._sealed(self._session(room_id).commits, info)

    def media_progress(self, room_id: RoomId, progress: MediaProgress) -> None:
        """Bytes of an open segment of the room's media: its ``media`` event, written
        now and committed soon."""
        self._progress(self._session(room_id).commits, progress)

    @staticmethod
    def _sealed(commits: GroupCommit, info: SegmentInfo) -> None:
        commits.append("segment", **info.listed())

    @staticmethod
    def _progress(commits: GroupCommit, progress: MediaProgress) -> None:
        """Bytes of an open segment, signed by the next checkpoint (within moments):
        after a crash they are what the file must still begin with."""
        commits.append(
            "media",
            seat=progress.seat.value,
            segment=progress.file,  # not ``file``: the event does not list it
            size=progress.size,
            sha256=progress.sha256,
            started_at_ms=progress.started_at_ms,
        )

    def _end(self, room_id: RoomId, **end: Any) -> asyncio.Task[None] | None:
        """Seal the session's segments and write its ``end`` now; its final commit runs
        as a task of ours. A later event for the room opens the same log again."""
        session = self._open.pop(room_id, None)
        if session is None:
            return None
        session.stop_recording()  # seals segments: their events come first
        session.commits.end(**end)
        task = asyncio.get_running_loop().create_task(self._finish(room_id, session.commits))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)
        return task

    @staticmethod
    async def _finish(room_id: RoomId, commits: GroupCommit) -> None:
        try:
            await commits.close()
        except Exception:
            log.exception("could not write the final checkpoint of %s", room_id)

    async def close(self, room_id: RoomId, **end: Any) -> None:
        """End the session's record; returns once its final checkpoint is on disk."""
        task = self._end(room_id, **end)
        if task is not None:
            await asyncio.wait({task})  # not cancelled with us: the record must end

    def stop_recording(self, room_id: RoomId) -> None:
        """The interview is about to end: seal its open segments now, so that their
        events precede the final one, and record no more of its media."""
        session = self._open.get(room_id)
        if session is not None:
            session.stop_recording()

    async def finish(self, room_id: RoomId) -> None:
        """The interview is over and its last event written: seal what is open and close
        the log once a checkpoint covers everything (no further ``end``: the interview's
        own final event ends it)."""
        session = self._open.pop(room_id, None)
        if session is None:
            return
        session.stop_recording()
        task = asyncio.get_running_loop().create_task(self._finish(room_id, session.commits))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)
        await asyncio.wait({task})

    async def list_closed(self, room_id: RoomId) -> bool:
        """After `finish`: list the session, with its final checkpoint, in the log of
        closed sessions (`recordings.closed_sessions`), signed and on disk before this
        returns; False if it was listed already. Raises `RecordingError` if its record
        cannot be listed (a fault a person must look at)."""
        async with self._closed_log_lock:
            closed_log = await self._closed_sessions()
            added = await asyncio.to_thread(closed_log.add_session, self.directory / room_id)
        return added is not None

    async def list_unlisted_closed(self) -> list[RoomId]:
        """At start: list every session whose record ends with its interview's final
        event but is not in the log of closed sessions yet (a stop between the two, or a
        record older than the log); returns them. A record that cannot be listed is
        logged, for a person, and left out."""
        async with self._closed_log_lock:
            closed_log = await self._closed_sessions()
            return await asyncio.to_thread(self._list_unlisted, closed_log)

    def _list_unlisted(self, closed_log: ClosedSessionsLog) -> list[RoomId]:
        listed = []
        for directory in sorted(self.directory.iterdir()):
            if directory.name == CLOSED_SESSIONS or closed_log.listed(directory.name):
                continue
            if RoomId(directory.name) in self._open or not _ends_final(directory / EVENTS):
                continue
            try:
                closed_log.add_session(directory)
            except (RecordingError, OSError):
                log.exception("%s ended but cannot be listed as closed", directory.name)
                continue
            listed.append(RoomId(directory.name))
        return listed

    @property
    def closed_sessions(self) -> Path:
        """The directory of the log of closed sessions."""
        return self.directory / CLOSED_SESSIONS

    async def _closed_sessions(self) -> ClosedSessionsLog:
        """The log of closed sessions, opened on first use (cut back to its last
        checkpoint if a crash left more); the caller holds ``_closed_log_lock``."""
        if self._closed:
            raise Conflict("the server is shutting down; nothing more is recorded")
        if self._closed_log is None:
            self._closed_log = await asyncio.to_thread(
                ClosedSessionsLog, self.directory, self._log_name, self.signer
            )
        return self._closed_log

    async def close_all(self) -> None:
        """End every session and wait for all final checkpoints; records nothing more.
        Safe twice."""
        self._closed = True
        for room_id in list(self._open):
            self._end(room_id)
        if self._ending:
            await asyncio.wait(set(self._ending))
        async with self._closed_log_lock:  # after any listing under way
            if self._closed_log is not None:
                self._closed_log.close()


def _ends_final(events: Path) -> bool:
    """The log's last event, shreds aside, is its interview's final event (read from its
    tail: a record's events are many, the shreds after its end a few)."""
    if not events.is_file():
        return False
    with events.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().splitlines()
    if size > _TAIL_BYTES:
        tail = tail[1:]  # the first line read may be part of one
    for line in reversed(tail):
        try:
            kind = msgspec.json.decode(line).get("kind")
        except (msgspec.DecodeError, AttributeError):
            return False  # a torn or damaged tail: not a record to list now
        if kind not in AFTER_FINAL:
            return kind in FINAL_EVENTS
    return False
