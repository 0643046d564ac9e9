"""Each interview's session record, kept as its room runs: the room's events go into the
signed event log, its media into the recorder, sealed segments into the log.

The interview server holds only public recipients (from settings) and its own checkpoint
signing key; it writes what it cannot read back.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from recordings.age import encrypt
from recordings.keys import Recipient
from recordings.recorder import Recorder, SegmentInfo
from recordings.session_record import SessionLog, session_origin
from recordings.tlog import NoteSigner
from signalling.interview import InterviewEvent
from signalling.types import NullSink, RecordingSink, RoomId

from .settings import Settings

log = logging.getLogger(__name__)

SIGNER_NAME = "nexus-interview-server"


def checkpoint_signer(path: Path, name: str = SIGNER_NAME) -> NoteSigner:
    """An Ed25519 checkpoint key (the server's, by default), made on first start (0600)."""
    if path.exists():
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 key")
    else:
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    return NoteSigner(name, key)


@dataclass
class _Open:
    log: SessionLog
    recorder: Recorder | None


class SessionRecords:
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

    def _session(self, room_id: RoomId) -> _Open:
        session = self._open.get(room_id)
        if session is None:
            directory = self.directory / room_id
            origin = session_origin(self._log_name, room_id)
            event_log = SessionLog(directory, origin, self.signer)
            recorder = None
            if self._recipients:
                recorder = Recorder(
                    directory,
                    self._recipients,
                    on_segment=lambda info: self._sealed(event_log, info),
                )
            session = self._open[room_id] = _Open(event_log, recorder)
        return session

    def sink(self, room_id: RoomId) -> RecordingSink:
        recorder = self._session(room_id).recorder
        return recorder if recorder is not None else NullSink()

    def event(self, room_id: RoomId, event: InterviewEvent) -> None:
        if event.kind == "end":
            self.close(room_id, **event.detail)
            return
        session = self._session(room_id)
        seat = event.seat.value if event.seat else None
        session.log.append(event.kind, seat=seat, **event.detail)
        session.log.checkpoint()

    def append(self, room_id: RoomId, kind: str, **fields: Any) -> None:
        """An event from outside the room (consent, decision)."""
        session = self._session(room_id)
        session.log.append(kind, **fields)
        session.log.checkpoint()

    def decision(
        self, room_id: RoomId, agency: str, verdict: str, reason_codes: list[str], notes: str
    ) -> None:
        """The decision in the log; the officer's notes only as an encrypted file and its
        hash (personal data never stands in the log)."""
        fields: dict[str, Any] = {
            "agency": agency,
            "verdict": verdict,
            "reason_codes": reason_codes,
        }
        session = self._session(room_id)
        if notes:
            fields |= self._sealed_file(session, f"notes-{agency.lower()}.txt.age", notes.encode())
        session.log.append("decision", **fields)
        session.log.checkpoint()

    def still(self, room_id: RoomId, agency: str, number: int, jpeg: bytes) -> None:
        """A captured ID still: encrypted beside the log, its hash in the log."""
        session = self._session(room_id)
        sealed = self._sealed_file(session, f"still-{number:03d}.jpg.age", jpeg)
        session.log.append("still", agency=agency, number=number, **sealed)
        session.log.checkpoint()

    def _sealed_file(self, session: _Open, name: str, plaintext: bytes) -> dict[str, Any]:
        """Write ``plaintext`` encrypted to the recipients; its name, hash and size."""
        if not self._recipients:
            return {}
        sealed = encrypt(plaintext, self._recipients)
        path = session.log.directory / name
        temporary = path.with_suffix(".partial")
        with open(temporary, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        return {"file": name, "sha256": hashlib.sha256(sealed).hexdigest(), "size": len(sealed)}

    @staticmethod
    def _sealed(event_log: SessionLog, info: SegmentInfo) -> None:
        event_log.append(
            "segment",
            seat=info.seat.value,
            file=info.path.name,
            sha256=info.sha256,
            size=info.size,
            video_frames=info.video_frames,
            audio_frames=info.audio_frames,
            duration_ms=info.duration_ms,
            started_at_ms=info.started_at_ms,
        )
        event_log.checkpoint()

    def close(self, room_id: RoomId, **end: Any) -> None:
        session = self._open.pop(room_id, None)
        if session is not None:
            if session.recorder is not None:
                session.recorder.close()  # seals segments: their events come first
            session.log.close(**end)

    def close_all(self) -> None:
        for room_id in list(self._open):
            self.close(room_id)
