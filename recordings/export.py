"""Decrypting a session's media for an agency or auditor: one WebM per participant, all
of that seat's segments in order on one timeline, never decoded or re-encoded; and, on
request, the side-by-side composite of all of them (`composite.py`)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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


def _segments_by_seat(session: Path) -> dict[str, list[Path]]:
    seats: dict[str, list[Path]] = {}
    for path in sorted(session.glob("*-*.webm.age")):
        seats.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return seats


def _segment_starts(session: Path) -> dict[str, int]:
    """Each sealed segment's wall-clock start (Unix ms), as its ``segment`` event says."""
    starts: dict[str, int] = {}
    events = session / "events.jsonl"
    if events.exists():
        for line in events.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("kind") == "segment":
                started = event.get("started_at_ms")
                if isinstance(started, int):
                    starts[str(event.get("file"))] = started
    return starts


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
    starts = _segment_starts(session)
    total, done = sum(map(len, seats.values())) + (1 if composite else 0), 0
    known = [starts[p.name] for paths in seats.values() for p in paths if p.name in starts]
    session_start = min(known, default=0)
    results = []
    for seat, paths in seats.items():
        exported = _export_seat(seat, paths, identities, out, starts, warning)
        if paths[0].name in starts:
            exported = replace(exported, offset_ms=starts[paths[0].name] - session_start)
        results.append(exported)
        done += len(paths)
        if progress:
            progress(done, total)
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
    exported = _export_seat(seat, paths, identities, buffer, _segment_starts(session))
    return buffer.getvalue(), exported


def _export_seat(
    seat: str,
    paths: list[Path],
    identities: Sequence[Identity],
    out: Path | io.BytesIO,
    starts: dict[str, int],
    warning: str = "",
) -> Exported:
    """One seat's segments remuxed into one file (in ``out``, a directory, or a buffer):
    each segment at its recorded start (gaps kept), or straight after the previous one
    when its start is unknown (cut by a crash)."""
    target = out / f"{seat}.webm" if isinstance(out, Path) else out
    frames = {"video": 0, "audio": 0}
    cut: list[str] = []
    first_start = starts.get(paths[0].name)
    with av.open(str(target) if isinstance(target, Path) else target, "w", format="webm") as output:
        if warning:
            output.metadata["comment"] = warning
        streams: dict[str, av.stream.Stream] = {}
        offset_ms = end_ms = 0
        for path in paths:
            data, short = _plain(path, identities)
            if short:
                cut.append(path.name)
            if path.name in starts and first_start is not None:
                offset_ms = max(starts[path.name] - first_start, end_ms)
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
        seat, shown, len(paths), frames["video"], frames["audio"], bool(cut), cut_short=tuple(cut)
    )
