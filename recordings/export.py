"""Decrypting a session's media for an agency or auditor: one WebM per participant, all
of that seat's segments in order on one timeline, never decoded or re-encoded; and, on
request, the side-by-side composite of all of them (`composite.py`)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av

from .age import AgeReader
from .composite import SeatTrack, write_composite
from .errors import TruncatedFile
from .keys import Identity
from .streams import opus_stream, vp8_stream

MS = Fraction(1, 1000)


@dataclass(frozen=True)
class Exported:
    seat: str
    path: Path
    segments: int
    video_frames: int
    audio_frames: int
    recovered_from_crash: bool
    offset_ms: int = 0  # where this seat's file starts on the session's timeline
    cut_short: tuple[str, ...] = ()  # segments that do not decrypt to their end
    started_at_ms: int | None = None  # the wall-clock time (Unix ms) of the file's time 0


def _segments_by_seat(session: Path) -> dict[str, list[Path]]:
    seats: dict[str, list[Path]] = {}
    for path in sorted(session.glob("*-*.webm.age")):
        seats.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return seats


@dataclass(frozen=True)
class _Timeline:
    """What the log says of where each segment lies in wall-clock time (Unix ms)."""

    starts: dict[str, int]  # a sealed segment's start, as its ``segment`` event says
    # A segment a crash cut short never got its start written (it is listed at the
    # restart): the ``outage`` that lists it says when the crash came, which its media
    # cannot have outlasted (the outage begins at the record's latest write).
    crash_ends: dict[str, int]


def _unix_ms(text: object) -> int | None:
    try:
        return round(datetime.fromisoformat(str(text)).timestamp() * 1000)
    except ValueError:
        return None


def _timeline(session: Path) -> _Timeline:
    starts: dict[str, int] = {}
    crash_ends: dict[str, int] = {}
    events = session / "events.jsonl"
    if events.exists():
        for line in events.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("kind") == "segment":
                started = event.get("started_at_ms")
                if isinstance(started, int):
                    starts[str(event.get("file"))] = started
            elif event.get("kind") == "outage":
                since = _unix_ms(event.get("since"))
                files = event.get("recovered_files")
                if since is not None and isinstance(files, list):
                    crash_ends |= {str(name): since for name in files}
    return _Timeline(starts, crash_ends)


def _start_ms(path: Path, data: bytes, timeline: _Timeline) -> int | None:
    """The segment's wall-clock start: as logged, or for one a crash cut short, the
    moment of the crash less the media recovered from it (so the media ends no later
    than the outage begins, and the outage shows as the gap it was)."""
    if path.name in timeline.starts:
        return timeline.starts[path.name]
    crashed = timeline.crash_ends.get(path.name)
    if crashed is None:
        return None
    return crashed - _length_ms(data)


def _length_ms(data: bytes) -> int:
    """Up to the end of a segment's last frame, from its timestamps (nothing decoded)."""
    end = 0
    with av.open(io.BytesIO(data), "r", format="webm") as source:
        for packet in source.demux():
            if packet.size and packet.pts is not None and packet.time_base is not None:
                end = max(end, int(packet.pts * packet.time_base * 1000) + 1)
    return end


def _plain(path: Path, identities: Sequence[Identity]) -> tuple[bytes, bool]:
    """The decrypted segment; a segment cut short by a crash gives its complete chunks."""
    with path.open("rb") as sealed:
        reader = AgeReader(sealed, identities)
        try:
            return b"".join(reader), False
        except TruncatedFile:
            return b"".join(reader.recoverable()), True


def export_session(
    session: Path,
    identities: Sequence[Identity],
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    composite: bool = False,
    warning: str = "",
) -> list[Exported]:
    """Write ``<seat>.webm`` per participant into ``out`` (and ``composite.webm`` if asked);
    ``progress`` hears (steps done, steps in all). A ``warning`` (the record did not
    verify) is written into each seat's file, so it stays with the file wherever it goes."""
    out.mkdir(parents=True, exist_ok=True)
    seats = _segments_by_seat(session)
    timeline = _timeline(session)
    total, done = sum(map(len, seats.values())) + (1 if composite else 0), 0
    results = []
    for seat, paths in seats.items():
        results.append(_export_seat(seat, paths, identities, out, timeline, warning))
        done += len(paths)
        if progress:
            progress(done, total)
    # every seat on the session's one timeline, which starts with the earliest media
    known = [item.started_at_ms for item in results if item.started_at_ms is not None]
    session_start = min(known, default=0)
    results = [
        replace(item, offset_ms=item.started_at_ms - session_start)
        if item.started_at_ms is not None
        else item
        for item in results
    ]
    if composite and results:
        tracks = [SeatTrack(item.seat, item.path, item.offset_ms) for item in results]
        write_composite(tracks, out / "composite.webm")
        if progress:
            progress(total, total)
    return results


def export_seat_bytes(
    session: Path, seat: str, identities: Sequence[Identity]
) -> tuple[bytes, Exported]:
    """One participant's WebM in memory (for downloads that must not touch the disk)."""
    paths = _segments_by_seat(session).get(seat)
    if not paths:
        raise FileNotFoundError(f"{session.name} holds no media of the {seat} seat")
    buffer = io.BytesIO()
    exported = _export_seat(seat, paths, identities, buffer, _timeline(session))
    return buffer.getvalue(), exported


def _export_seat(
    seat: str,
    paths: list[Path],
    identities: Sequence[Identity],
    out: Path | io.BytesIO,
    timeline: _Timeline,
    warning: str = "",
) -> Exported:
    """One seat's segments remuxed into one file (in ``out``, a directory, or a buffer):
    each segment at its start on the wall clock (gaps kept), or straight after the
    previous one when its start is unknown."""
    target = out / f"{seat}.webm" if isinstance(out, Path) else out
    frames = {"video": 0, "audio": 0}
    cut: list[str] = []
    first_start: int | None = None
    with av.open(str(target) if isinstance(target, Path) else target, "w", format="webm") as output:
        if warning:
            output.metadata["comment"] = warning
        streams: dict[str, av.stream.Stream] = {}
        offset_ms = end_ms = 0
        for number, path in enumerate(paths):
            data, short = _plain(path, identities)
            if short:
                cut.append(path.name)
            start = _start_ms(path, data, timeline)
            if number == 0:
                first_start = start
            if start is not None and first_start is not None:
                offset_ms = max(start - first_start, end_ms)
            else:
                offset_ms = end_ms
            with av.open(io.BytesIO(data), "r", format="webm") as source:
                if not streams:
                    for video in source.streams.video[:1]:
                        streams["video"] = vp8_stream(output, video.width, video.height)
                    if source.streams.audio:
                        streams["audio"] = opus_stream(output)
                for packet in source.demux():
                    if packet.size == 0 or packet.pts is None:
                        continue
                    kind = packet.stream.type
                    if kind not in streams:
                        continue
                    pts_ms = int(packet.pts * packet.time_base * 1000) + offset_ms
                    packet.stream = streams[kind]
                    packet.pts = packet.dts = pts_ms
                    packet.time_base = MS
                    output.mux(packet)
                    frames[kind] += 1
                    end_ms = max(end_ms, pts_ms + 1)
    shown = target if isinstance(target, Path) else Path(f"{seat}.webm")
    return Exported(
        seat,
        shown,
        len(paths),
        frames["video"],
        frames["audio"],
        bool(cut),
        cut_short=tuple(cut),
        started_at_ms=first_start,
    )
