"""What a crash left of a session record: its log cut back to the last checkpoint, and an
event for every file in its directory that no kept event names (`after_crash`), so that
`SessionRecords.recover` can list them and carry on. A file whose writer stopped before
sealing it (a crash, a media worker lost) is listed one way (`recovered_listing`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from common.names import Seat
from recordings.session_record import EVENTS, cut_to_last_checkpoint
from recordings.tlog import NoteVerifier

SEGMENT_NAME = re.compile(r"(?P<seat>[a-z]+)-(?P<index>[0-9]+)\.webm\.age")  # as Recorder names


def segment_seat(name: str) -> Seat | None:
    """The seat whose media a file holds, from its name as `Recorder` gives it
    (``<seat>-<number>.webm.age``); None for any other file."""
    match = SEGMENT_NAME.fullmatch(name)
    if match is None or match["seat"] not in {seat.value for seat in Seat}:
        return None
    return Seat(match["seat"])


def recovered_listing(
    file: Path, last_report: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The event (kind, fields) that lists ``file``, left unsealed by a writer that
    stopped: ``recovered: true``, with its hash and size as it is now, and what the last
    ``media`` event about it (``last_report``: its fields) signed of its start."""
    with file.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    fields: dict[str, Any] = {
        "file": file.name,
        "sha256": digest,
        "size": file.stat().st_size,
        "recovered": True,
    }
    if last_report is not None:  # what verification holds the file's start to
        fields |= {
            "authenticated_size": last_report["size"],
            "authenticated_sha256": last_report["sha256"],
        }
        if isinstance(last_report.get("started_at_ms"), int):  # where export places it
            fields["started_at_ms"] = last_report["started_at_ms"]
    seat = segment_seat(file.name)
    if seat is None:  # an officer's notes or an ID still sealed just before the crash
        return "recovered_file", fields
    return "segment", {"seat": seat.value, **fields}


@dataclass(frozen=True)
class Recovery:
    """What `SessionRecords.recover` did to a log left by a crash."""

    events_kept: int  # the events its last checkpoint covers
    events_cut: int  # lines after them (whole events or a half-written one), removed
    listed: tuple[str, ...]  # files no event named, now listed (``recovered: true``)
    last_event_at: str | None  # the ISO ``at`` of the last event kept; None if none was
    ended: bool  # the kept log ends with ``end``: it was left closed


@dataclass(frozen=True)
class _Found:
    recovery: Recovery
    listings: list[tuple[str, dict[str, Any]]]  # (kind, fields) of each event to add


def after_crash(directory: Path, verifier: NoteVerifier) -> _Found:
    """Cut the log back to its last checkpoint; the events that list every file in the
    directory no kept event names."""
    path = directory / EVENTS
    before = path.read_bytes().split(b"\n")
    kept = cut_to_last_checkpoint(directory, [verifier])
    events = [msgspec.json.decode(line) for line in before[:kept]]
    named = {str(event["file"]) for event in events if "file" in event}
    reported = {str(e.get("segment")): e for e in events if e.get("kind") == "media"}
    listings = [
        recovered_listing(file, reported.get(file.name))
        for file in sorted(directory.glob("*.age"))
        if file.name not in named
    ]
    cut = len(before) - (1 if before[-1] == b"" else 0) - kept
    recovery = Recovery(
        events_kept=kept,
        events_cut=cut,
        listed=tuple(str(fields["file"]) for _, fields in listings),
        last_event_at=str(events[-1]["at"]) if events else None,
        ended=bool(events) and events[-1].get("kind") == "end",
    )
    return _Found(recovery, listings)
