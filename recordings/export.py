"""Decrypting a session's media for an agency or auditor: one WebM per participant, all
of that seat's segments in order on one timeline, never decoded or re-encoded."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .age import AgeReader
from .errors import TruncatedFile
from .keys import Identity

MS = Fraction(1, 1000)


@dataclass(frozen=True)
class Exported:
    seat: str
    path: Path
    segments: int
    video_frames: int
    audio_frames: int
    recovered_from_crash: bool


def _segments_by_seat(session: Path) -> dict[str, list[Path]]:
    seats: dict[str, list[Path]] = {}
    for path in sorted(session.glob("*-*.webm.age")):
        seats.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return seats


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
) -> list[Exported]:
    """Write ``<seat>.webm`` per participant into ``out``; ``progress`` hears
    (segments done, segments in all)."""
    out.mkdir(parents=True, exist_ok=True)
    seats = _segments_by_seat(session)
    total, done = sum(map(len, seats.values())), 0
    results = []
    for seat, paths in seats.items():
        target = out / f"{seat}.webm"
        frames = {"video": 0, "audio": 0}
        recovered = False
        with av.open(str(target), "w", format="webm") as output:
            streams: dict[str, av.stream.Stream] = {}
            offset_ms = 0
            for path in paths:
                data, cut = _plain(path, identities)
                recovered |= cut
                end_ms = offset_ms
                with av.open(io.BytesIO(data), "r", format="webm") as source:
                    if not streams:
                        for video in source.streams.video[:1]:
                            streams["video"] = output.add_mux_stream(
                                "vp8", width=video.width, height=video.height
                            )
                        if source.streams.audio:
                            streams["audio"] = output.add_mux_stream(
                                "opus", rate=48000, layout="stereo"
                            )
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
                offset_ms = end_ms
                done += 1
                if progress:
                    progress(done, total)
        results.append(
            Exported(seat, target, len(paths), frames["video"], frames["audio"], recovered)
        )
    return results
