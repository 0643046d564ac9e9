"""What the audit console knows: the session records on disk (read, never written), their
verification by the same code as `records verify`, each session's timeline, decisions and
media, and the application store opened read-only. The only process holding a private
identity (the audit body's), so it runs apart from the interview server."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.errors import NotFound
from common.names import Agency
from recordings.age import AgeReader, decrypt
from recordings.closed_sessions import (
    CLOSED_SESSIONS,
    ClosedSessions,
    check_record,
    read_closed_sessions,
)
from recordings.errors import RecordingError
from recordings.export import export_seat_bytes
from recordings.keys import Identity
from recordings.session_record import CHECKPOINTS, EVENTS, Verification, verify_session
from recordings.tlog import NoteVerifier
from recordings.witness_keys import WitnessKey

from .audit_checks import BackgroundChecks
from .store import Store
from .views.seats import seated_officers

SESSION_ID = re.compile(r"^iv_[0-9a-f]{16}$")
BLOB_FILE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9]+)*\.age$")
SEGMENT_FILE = re.compile(r"^(applicant|cbsa|cbp)-[0-9]{5}\.webm\.age$")
MEDIA_BOOKKEEPING = frozenset({"segment", "media"})
"""Events about the media files (seals, progress reports): not what happened in the
interview, so not on its timeline."""
SHOWN_DETAIL = (
    "agency",
    "country",
    "by",
    "next",
    "verdict",
    "reason_codes",
    "number",
    "language",
    "text_version",
    "gap_seconds",
    "reason",
)


@dataclass(frozen=True)
class SessionSummary:
    interview_id: str
    date: str
    officers: list[dict[str, str | None]]
    outcome: str
    status: str  # verified | incomplete | failed | checking (not yet verified)
    problems: list[str]
    witnessing: dict[str, Any]  # see `witnessing`; empty until verified


@dataclass
class _Cached:
    fingerprint: tuple[int, ...]
    result: Verification


@dataclass
class AuditConsole:
    records: Path
    identities: Sequence[Identity]
    server_keys: Sequence[NoteVerifier]
    store: Store
    witnesses: Sequence[WitnessKey] = ()
    _verified: dict[str, _Cached] = field(default_factory=dict)
    _events: dict[str, tuple[tuple[int, int], list[dict[str, Any]]]] = field(default_factory=dict)
    _closed: tuple[tuple[int, ...], ClosedSessions] | None = None
    checks: BackgroundChecks = field(init=False)

    def __post_init__(self) -> None:
        self.checks = BackgroundChecks(self.verification)

    def session_dir(self, interview_id: str) -> Path:
        directory = self.records / interview_id
        if not SESSION_ID.fullmatch(interview_id) or not (directory / EVENTS).is_file():
            raise NotFound("there is no session record {interview}", interview=interview_id[:40])
        return directory

    def session_ids(self) -> list[str]:
        if not self.records.is_dir():
            return []
        return sorted(
            path.name
            for path in self.records.iterdir()
            if SESSION_ID.fullmatch(path.name) and (path / EVENTS).is_file()
        )

    def recently_written_first(self) -> list[str]:
        def written(interview_id: str) -> int:
            return (self.records / interview_id / EVENTS).stat().st_mtime_ns

        return sorted(self.session_ids(), key=written, reverse=True)

    def verification(self, interview_id: str) -> Verification:
        """`records verify` on the session, again only when a file in it changed."""
        fingerprint = self._fingerprint(interview_id)
        cached = self._verified.get(interview_id)
        if cached is None or cached.fingerprint != fingerprint:
            closed = self.closed_sessions()
            result = verify_session(
                self.session_dir(interview_id),
                self.server_keys,
                witnesses=self.witnesses,
                listing=None
                if closed is None
                else lambda directory: check_record(closed, directory, self.server_keys),
            )
            cached = self._verified[interview_id] = _Cached(fingerprint, result)
        return cached.result

    def known_verification(self, interview_id: str) -> Verification | None:
        """The verification if it is still current; else None, and the session is queued
        for the background checks."""
        fingerprint = self._fingerprint(interview_id)  # NotFound if it is no session
        cached = self._verified.get(interview_id)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached.result
        self.checks.want([interview_id])
        return None

    def _fingerprint(self, interview_id: str) -> tuple[int, ...]:
        """Changes when a file of the session does, or its entry in the log of closed
        sessions (not when another session is listed: that would verify every one again)."""
        directory = self.session_dir(interview_id)
        stats = [p.stat() for p in sorted(directory.rglob("*")) if p.is_file()]
        files = tuple(n for s in stats for n in (s.st_size, s.st_mtime_ns))
        closed = self.closed_sessions()
        if closed is None:
            return files
        entry = closed.entries.get(interview_id)
        return (*files, *((entry.seq, entry.size) if entry else (-1, -1)))

    def closed_sessions(self) -> ClosedSessions | None:
        """The server's log of closed sessions beside the records, read again only when it
        changed; None if there is none."""
        directory = self.records / CLOSED_SESSIONS
        if not directory.is_dir():
            return None
        stamp = tuple(
            n
            for path in (directory / EVENTS, directory / CHECKPOINTS)
            if path.exists()
            for n in (path.stat().st_size, path.stat().st_mtime_ns)
        )
        if self._closed is None or self._closed[0] != stamp:
            read = read_closed_sessions(self.records, self.server_keys, self.witnesses)
            self._closed = (stamp, read)
        return self._closed[1]

    @staticmethod
    def status(result: Verification | None) -> str:
        if result is None:
            return "checking"
        if result.ok:
            return "verified"
        if all(problem.startswith("incomplete") for problem in result.problems):
            return "incomplete"
        return "failed"

    def events(self, interview_id: str) -> list[dict[str, Any]]:
        """The session's events, read again only when the file changed (every media range
        request asks which files the log lists)."""
        path = self.session_dir(interview_id) / EVENTS
        stat = path.stat()
        fingerprint = (stat.st_size, stat.st_mtime_ns)
        cached = self._events.get(interview_id)
        if cached is None or cached[0] != fingerprint:
            cached = self._events[interview_id] = (fingerprint, _read_events(path))
        return cached[1]

    async def officers(self, interview_id: str) -> list[dict[str, str | None]]:
        try:
            interview = await self.store.interviews.get(interview_id)
        except NotFound:
            return []
        return list((await seated_officers(self.store, interview)).values())

    async def outcome(self, interview_id: str) -> str:
        try:
            interview = await self.store.interviews.get(interview_id)
        except NotFound:
            return "unknown"
        decided = await self.store.decisions.for_interview(interview_id)
        if len(decided) < len(Agency):
            return "pending"
        return (await self.store.applications.get(interview.application_id)).status.value

    async def summary(self, interview_id: str) -> SessionSummary:
        result = self.known_verification(interview_id)
        events = self.events(interview_id)
        date = str(events[0].get("at", ""))[:10] if events else ""
        return SessionSummary(
            interview_id,
            date,
            await self.officers(interview_id),
            await self.outcome(interview_id),
            self.status(result),
            result.problems if result else [],
            witnessing(result) if result else {},
        )

    async def detail(self, interview_id: str) -> dict[str, Any]:
        """The session page's data: verification, timeline, seats' segments, stills,
        decisions (notes decrypted with the audit identity), on one clock (seconds)."""
        result = await asyncio.to_thread(self.verification, interview_id)  # hashes media
        events = self.events(interview_id)
        first_event = _ms(events[0]["at"]) if events else 0
        seats, origin_ms = seat_segments(events, first_event)

        def at(event: dict[str, Any]) -> float:
            return round((_ms(event["at"]) - origin_ms) / 1000, 3)

        timeline = [
            {
                "at": at(event),
                "kind": event.get("kind"),
                "seat": event.get("seat"),
                **{key: event[key] for key in SHOWN_DETAIL if key in event},
            }
            for event in events
            if event.get("kind") not in MEDIA_BOOKKEEPING
        ]
        ends = [s["start"] + s["duration"] for segs in seats.values() for s in segs]
        return {
            "interview_id": interview_id,
            "status": self.status(result),
            "verification": {
                "ok": result.ok,
                "events": result.events,
                "checkpoints": result.checkpoints,
                "last_checkpoint": result.last_checkpoint,
                "segments": result.segments,
                "shredded": result.shredded,
                "complete": result.complete,
                "consent": any(e.get("kind") == "consent" for e in events),
                "witnessed_by": result.witnessed_by,
                "closed": result.closed,
                "witnessing": witnessing(result),
                "problems": result.problems,
            },
            "duration": max(ends, default=0.0),
            "seats": seats,
            "timeline": timeline,
            "stills": [
                {"number": e["number"], "agency": e.get("agency"), "at": at(e)}
                for e in events
                if e.get("kind") == "still" and "file" in e
            ],
            "decisions": [
                self._decision(interview_id, e) for e in events if e.get("kind") == "decision"
            ],
            "officers": await self.officers(interview_id),
            "outcome": await self.outcome(interview_id),
        }

    def _decision(self, interview_id: str, event: dict[str, Any]) -> dict[str, Any]:
        notes = None
        if "file" in event:
            notes = self.decrypt_file(interview_id, str(event["file"])).decode("utf-8", "replace")
        return {
            "agency": event.get("agency"),
            "verdict": event.get("verdict"),
            "reason_codes": event.get("reason_codes", []),
            "notes": notes,
        }

    def listed_file(self, interview_id: str, name: str) -> Path:
        """A file the session's log lists (nothing else in the directory is served)."""
        directory = self.session_dir(interview_id)
        listed = any(event.get("file") == name for event in self.events(interview_id))
        # a name from an altered log must not lead outside the session's directory
        if not listed or not BLOB_FILE.fullmatch(name):
            raise NotFound("the session record lists no file {name}", name=name[:80])
        return directory / name

    def decrypt_file(self, interview_id: str, name: str) -> bytes:
        try:
            return decrypt(self.listed_file(interview_id, name).read_bytes(), self.identities)
        except RecordingError as exc:
            raise NotFound(
                "{name} cannot be opened: {reason}", name=name, reason=exc.message
            ) from None

    def still(self, interview_id: str, number: int) -> bytes:
        for event in self.events(interview_id):
            if event.get("kind") == "still" and event.get("number") == number and "file" in event:
                return self.decrypt_file(interview_id, str(event["file"]))
        raise NotFound("there is no ID still {number} in this session", number=number)

    def export(self, interview_id: str, seat: str) -> bytes:
        """One participant's whole recording as one WebM, made in memory."""
        if seat not in ("applicant", "cbsa", "cbp"):
            raise NotFound("there is no seat {seat}", seat=seat[:20])
        try:
            data, _ = export_seat_bytes(self.session_dir(interview_id), seat, self.identities)
        except FileNotFoundError:
            raise NotFound("this session holds no media of the {seat} seat", seat=seat) from None
        except RecordingError as exc:
            raise NotFound(
                "the {seat} media cannot be opened: {reason}", seat=seat, reason=exc.message
            ) from None
        return data

    def media_range(
        self, interview_id: str, name: str, start: int, length: int | None
    ) -> tuple[bytes, int]:
        """Plaintext bytes [start, start + length) of a media segment (to its end if
        ``length`` is None), decrypting only the 64 KiB chunks they fall in; and the
        segment's readable size."""
        if not SEGMENT_FILE.fullmatch(name):
            raise NotFound("{name} is not a media segment", name=name[:80])
        path = self.listed_file(interview_id, name)
        try:
            with path.open("rb") as sealed:
                reader = AgeReader(sealed, self.identities)
                size = reader.readable_size()
                left = max(0, size - start)
                count = left if length is None else min(length, left)
                return reader.read_range(start, count), size
        except RecordingError as exc:
            raise NotFound(
                "{name} cannot be opened: {reason}", name=name, reason=exc.message
            ) from None


def witnessing(result: Verification) -> dict[str, Any]:
    """What is still unwitnessed in a session, as the verification found it: whether the
    interview closed (before that there is no final checkpoint to cosign), the witnesses
    the console was given (none: nobody outside the server vouches for any record), and
    which of them cosigned the final checkpoint and which have not yet."""
    if result.failed:
        waiting = ""  # nothing to wait for: what is wrong is said in its problems
    elif not result.closed:
        waiting = "close"
    elif not result.witnesses:
        waiting = "witness keys"
    elif result.unwitnessed:
        waiting = "cosignatures"
    else:
        waiting = ""
    return {
        "closed": result.closed,
        "final_event": result.final_event,
        "witnesses": result.witnesses,
        "cosigned": [name for name in result.witnessed_by if name in result.witnesses],
        "unwitnessed": result.unwitnessed,
        "waiting_for": waiting,
    }


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_bytes().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            break  # verification names the problem; the timeline stops here
        if isinstance(event, dict):
            events.append(event)
    return events


def seat_segments(
    events: Sequence[dict[str, Any]], first_event_ms: int
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Each seat's segments on the session's clock (seconds from the first segment's
    start, else from ``first_event_ms``, which is returned as the origin in ms). A segment a
    crash cut short has no logged duration: it lasts until the outage that lists it began
    (its media ends no later); one that nothing places is left out."""
    crashed = {
        str(name): _ms(event["since"])
        for event in events
        if event.get("kind") == "outage" and "since" in event
        for name in event.get("recovered_files", [])
    }
    placed = []
    for event in events:
        if event.get("kind") != "segment" or "started_at_ms" not in event:
            continue
        start = int(event["started_at_ms"])
        if "duration_ms" in event:
            placed.append((event, start, int(event["duration_ms"])))
        elif str(event["file"]) in crashed:
            placed.append((event, start, max(0, crashed[str(event["file"])] - start)))
    origin_ms = min((start for _, start, _ in placed), default=first_event_ms)
    seats: dict[str, list[dict[str, Any]]] = {}
    for event, start, duration in placed:
        seats.setdefault(str(event["seat"]), []).append(
            {
                "file": event["file"],
                "start": (start - origin_ms) / 1000,
                "duration": duration / 1000,
            }
        )
    return seats, origin_ms


def _ms(moment: object) -> int:
    return round(datetime.fromisoformat(str(moment)).timestamp() * 1000)
