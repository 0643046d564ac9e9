"""What a kill -9 of the recorder would lose, at every moment of a recording: the file is
written unbuffered, so what a crash leaves is what is sealed on disk now. A test clock
says when each frame arrives; after each arrival the sealed chunks are decrypted as a
crash would leave them, and each stream's oldest frame not yet in a whole cluster on disk
says how much of it (by arrival: what a crash takes is what came in lately) would be lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from common.names import Kind
from recordings.age import AgeReader

from .test_recorder import Sent, TimedFeed, by_capture, ebml_elements, stream

CLUSTER = 0x1F43B675
SEGMENT = 0x18538067
SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xA3, 0xA0, 0xA1


def frames_on_disk(path: Path, feed: TimedFeed) -> dict[Kind, int]:
    """Frames of each stream in whole clusters of the file's complete age chunks."""
    with path.open("rb") as sealed:
        plain = b"".join(AgeReader(sealed, [feed.identity]).recoverable())
    counts = {Kind.VIDEO: 0, Kind.AUDIO: 0}
    for element_id, start, end in ebml_elements(plain, 0, len(plain)):
        if element_id != SEGMENT:
            continue
        for cluster, c_start, c_end in ebml_elements(plain, start, end):
            if cluster != CLUSTER or c_end > len(plain):
                continue
            for child, b_start, b_end in ebml_elements(plain, c_start, c_end):
                block = plain[b_start:b_end]
                if child == BLOCK_GROUP:
                    parts = {i: plain[s:e] for i, s, e in ebml_elements(plain, b_start, b_end)}
                    block = parts[BLOCK]
                elif child != SIMPLE_BLOCK:
                    continue
                counts[Kind.VIDEO if block[0] & 0x7F == 1 else Kind.AUDIO] += 1
    return counts


def worst_loss(tmp_path: Path, arrivals: Sequence[tuple[float, Sent]]) -> dict[Kind, float]:
    """Plays the frames; the most of each stream (ms of arrival) a crash would have lost."""
    feed = TimedFeed(tmp_path)
    arrived: dict[Kind, list[float]] = {Kind.VIDEO: [], Kind.AUDIO: []}
    worst = {Kind.VIDEO: 0.0, Kind.AUDIO: 0.0}
    for at_ms, frame in sorted(arrivals, key=lambda a: a[0]):
        feed.arrive(frame, at_ms)
        arrived[frame.kind].append(at_ms)
        if frame.kind is not Kind.VIDEO:
            continue  # a look at the file every video frame is often enough
        [path] = (tmp_path / "record").glob("*.webm.age")
        for kind, count in frames_on_disk(path, feed).items():
            if count < len(arrived[kind]):
                worst[kind] = max(worst[kind], at_ms - arrived[kind][count])
    feed.recorder.close()
    return worst


def test_a_crash_in_a_call_loses_at_most_a_second_of_either_stream(tmp_path: Path) -> None:
    frames = by_capture(stream(Kind.VIDEO, 5, 0, 6000), stream(Kind.AUDIO, 7, 0, 6000))
    lost = worst_loss(tmp_path, [(f.captured + 5 + f.captured % 7, f) for f in frames])
    print({kind.value: round(ms) for kind, ms in lost.items()})
    assert max(lost.values()) <= 1000, lost


def lagging(late: Kind, lag_ms: int) -> list[tuple[float, Sent]]:
    """Both streams arrive a few ms after capture, until ``late``'s frames captured from
    the second second on arrive ``lag_ms`` later than that (its path got slower, a
    sender's pacer holds it back): its timeline then sits behind the other's."""
    frames = by_capture(stream(Kind.VIDEO, 5, 0, 8000), stream(Kind.AUDIO, 7, 0, 8000))
    return [
        (f.captured + 5 + (lag_ms if f.kind is late and f.captured >= 1000 else 0), f)
        for f in frames
    ]


@pytest.mark.parametrize("late", [Kind.VIDEO, Kind.AUDIO])
@pytest.mark.parametrize("lag_ms", [500, 1000, 2000, 2900])
def test_a_crash_while_a_stream_lags_loses_at_most_a_second_of_either(
    tmp_path: Path, late: Kind, lag_ms: int
) -> None:
    lost = worst_loss(tmp_path, lagging(late, lag_ms))
    print(late.value, lag_ms, {kind.value: round(ms) for kind, ms in lost.items()})
    assert max(lost.values()) <= 1000, lost
