"""The recorder with real parts: a three-person room recorded to age-encrypted live WebM,
decrypted by the `age` command and read by `ffprobe`; a recorder killed with SIGKILL
whose file still gives up all but about the last second; and frames timestamped from
their RTP timing whenever, and in whatever bursts, they arrive."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from media.interview import InterviewRoom
from recordings.age import AgeReader
from recordings.keys import Identity, write_identity_file
from recordings.recorder import KEYFRAME_SECONDS, FileOutputs, Recorder, vp8_dimensions
from recordings.timestamps import MAX_SKEW_MS

from .clips import clip
from .media import HEIGHT, WIDTH, SyntheticParticipant, wait_for


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make test` installs it"
    return found


def ffprobe_json(path: Path) -> dict[str, Any]:
    """What ffprobe reads of the whole file: streams (frames counted) and the duration."""
    done = subprocess.run(
        [
            tool("ffprobe"),
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def probe(path: Path) -> dict[str, int]:
    """Frames per codec, as ffprobe counts them by reading the whole file."""
    counts = {}
    for stream in ffprobe_json(path)["streams"]:
        frames = str(stream.get("nb_read_frames", ""))
        counts[stream["codec_name"]] = int(frames) if frames.isdigit() else 0  # N/A: none
    return counts


async def test_a_recorded_interview_decrypts_with_age_and_plays(tmp_path: Path) -> None:
    identity = Identity.generate()
    key = tmp_path / "keys" / "cbsa.txt"
    write_identity_file(key, identity)
    outputs = FileOutputs(tmp_path / "record")
    recorder = Recorder(outputs, [identity.recipient], segment_seconds=1.0)
    room = InterviewRoom(RoomId("iv_rec"), sink=recorder)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        for person in people.values():
            await person.connect(room.join)
        await wait_for(lambda: len(recorder.segments) >= 6, within=30)
    finally:
        for person in people.values():
            await person.close()
        await room.close()  # every publisher leaves: every open segment is sealed
    recorder.close()
    await asyncio.to_thread(check_recording, recorder, key, tmp_path)


def check_recording(recorder: Recorder, key: Path, tmp_path: Path) -> None:
    """Every segment decrypts with the `age` command and ffprobe counts what was muxed."""
    assert {s.seat for s in recorder.segments} == set(Seat)
    for segment in recorder.segments:
        path = tmp_path / "record" / segment.file
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n")
        plain = tmp_path / f"{path.stem}"
        subprocess.run([tool("age"), "-d", "-i", str(key), "-o", str(plain), str(path)], check=True)
        counts = probe(plain)
        # ffprobe finds exactly what was muxed (a segment sealed just after it began
        # may hold a single keyframe and no audio yet)
        assert counts["vp8"] == segment.video_frames > 0
        assert counts.get("opus", 0) == segment.audio_frames
    # every seat's audio and video were recorded
    for seat in Seat:
        mine = [s for s in recorder.segments if s.seat is seat]
        assert sum(s.video_frames for s in mine) > 30
        assert sum(s.audio_frames for s in mine) > 30
    # nothing in the recording directory is readable without a key
    for path in (tmp_path / "record").iterdir():
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n")


def test_vp8_dimensions_come_from_the_keyframe_header() -> None:
    header = (
        bytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A])
        + WIDTH.to_bytes(2, "little")
        + HEIGHT.to_bytes(2, "little")
    )
    assert vp8_dimensions(header) == (WIDTH, HEIGHT)
    assert vp8_dimensions(b"\x01\x02\x03") is None


def test_segments_are_numbered_on_from_next_segment_past_names_taken(tmp_path: Path) -> None:
    """A room recorded again never overwrites what it recorded before: numbering starts
    where it was told to, and skips a name its outputs already hold."""
    outputs = FileOutputs(tmp_path / "record")
    taken = outputs.directory / "applicant-00003.webm.age"
    taken.write_bytes(b"recorded before")
    recorder = Recorder(outputs, [Identity.generate().recipient], next_segment={Seat.APPLICANT: 3})
    video = clip()
    for seat in (Seat.APPLICANT, Seat.CBP):
        recorder.on_frame(seat, Kind.VIDEO, EncodedFrame(video[0], 0, Fraction(1, 90000), True))
    recorder.close()

    assert [(s.seat, s.index, s.file) for s in recorder.segments] == [
        (Seat.APPLICANT, 4, "applicant-00004.webm.age"),
        (Seat.CBP, 1, "cbp-00001.webm.age"),
    ]
    assert taken.read_bytes() == b"recorded before"
    for segment in recorder.segments:
        path = outputs.directory / segment.file
        assert path.stat().st_size == segment.size  # counted as written, and all on disk
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        outputs.open("cbp-00001.webm.age")


def test_after_kill_9_everything_but_about_the_last_second_decrypts_and_plays(
    tmp_path: Path,
) -> None:
    identity = Identity.generate()
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "tests.crash_session", "--recorder"),
            *(str(tmp_path), str(identity.recipient)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "recording"
    recorded = 0
    while recorded < 150:  # five seconds of video at 30 fps
        recorded = int(process.stdout.readline())
    process.send_signal(signal.SIGKILL)
    process.wait()
    [path] = list(tmp_path.glob("*.webm.age"))
    with path.open("rb") as sealed:
        reader = AgeReader(sealed, [identity])
        recovered = b"".join(reader.recoverable())
    plain = tmp_path / "recovered.webm"
    plain.write_bytes(recovered)
    frames = probe(plain).get("vp8", 0)
    print(f"recorded {recorded} frames, recovered {frames} after SIGKILL")
    assert frames >= recorded - 30, (frames, recorded)  # at most a second lost


# Timing: frames are timestamped from their own RTP timing, anchored at arrival. A test
# clock says when each frame "arrives"; the file is read back with ffprobe.

VIDEO_TICKS, AUDIO_TICKS = 3000, 960  # one frame at 30 fps (90 kHz), 20 ms of Opus (48 kHz)
# one 20 ms Opus frame (stereo CELT, silent, a byte of padding): four bytes, so it is told
# from the recorder's own silent packets (`opus.SILENCE`, three) where it fills a gap
OPUS_PACKET = b"\xfc\xff\xfe\x00"


@dataclass
class Sent:
    """A frame as its sender made it: when it was captured (ms) and its RTP timestamp."""

    kind: Kind
    captured: int
    rtp: int


def stream(kind: Kind, base: int, start_ms: int, end_ms: int) -> list[Sent]:
    """One stream's frames captured from ``start_ms`` to ``end_ms``, RTP from ``base``."""
    step, ms = (VIDEO_TICKS, 100 / 3) if kind is Kind.VIDEO else (AUDIO_TICKS, 20.0)
    count = int((end_ms - start_ms) / ms)
    return [Sent(kind, start_ms + round(n * ms), (base + n * step) % 2**32) for n in range(count)]


class TimedFeed:
    """A recorder driven by a clock the test sets, fed real VP8 frames and Opus packets."""

    def __init__(self, tmp_path: Path) -> None:
        self.identity = Identity.generate()
        self.now = 100.0
        self.directory = tmp_path / "record"
        self.recorder = Recorder(
            FileOutputs(self.directory),
            [self.identity.recipient],
            segment_seconds=3600,
            clock=lambda: self.now,
        )
        self.video = clip()
        self.sent = 0

    def play(self, arrivals: Sequence[tuple[float, Sent]]) -> None:
        """Hands each frame to the recorder when it arrives (ms after the first)."""
        for at_ms, frame in sorted(arrivals, key=lambda a: a[0]):
            self.arrive(frame, at_ms)

    def arrive(self, frame: Sent, at_ms: float) -> None:
        self.now = 100.0 + at_ms / 1000
        if frame.kind is Kind.VIDEO:
            data = self.video[self.sent % len(self.video)]
            keyframe = self.sent % len(self.video) == 0
            encoded = EncodedFrame(data, frame.rtp, Fraction(1, 90000), keyframe)
            self.sent += 1
        else:
            encoded = EncodedFrame(OPUS_PACKET, frame.rtp, Fraction(1, 48000), True)
        self.recorder.on_frame(Seat.APPLICANT, frame.kind, encoded)

    def packet_pts(self, fillers: bool = False) -> dict[str, list[int]]:
        """Each codec's packet pts in the file (ms), as ffprobe reads them (the silent
        packets the recorder put in a gap only if ``fillers``); and the blocks are in time
        order within each cluster and each track, as browsers' WebM parsers insist."""
        self.recorder.close()
        [segment] = self.recorder.segments
        path = self.directory / segment.file
        plain = path.with_suffix("")
        with path.open("rb") as sealed:
            plain.write_bytes(b"".join(AgeReader(sealed, [self.identity])))
        done = subprocess.run(
            [
                tool("ffprobe"),
                *("-v", "error", "-of", "json"),
                *("-show_entries", "stream=index,codec_name:packet=stream_index,pts,size"),
                str(plain),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(done.stdout)
        codecs = {s["index"]: s["codec_name"] for s in found["streams"]}
        pts: dict[str, list[int]] = {codec: [] for codec in codecs.values()}
        for packet in found["packets"]:
            codec = codecs[packet["stream_index"]]
            if fillers or codec != "opus" or int(packet["size"]) == len(OPUS_PACKET):
                pts[codec].append(int(packet["pts"]))
        for codec, times in pts.items():
            assert times == sorted(set(times)), f"{codec}: a block not after the one before it"
        for cluster in clusters(plain.read_bytes()):
            assert cluster == sorted(cluster), "a block earlier than the one before it"
        return pts


def by_capture(*streams: list[Sent]) -> list[Sent]:
    return sorted((f for s in streams for f in s), key=lambda f: (f.captured, f.kind is Kind.AUDIO))


def in_order(
    frames: list[Sent], held_until: float = 0, start: int = 0, end: int = 0
) -> list[tuple[float, Sent]]:
    """When frames arrive: a few ms after capture, except that those captured from
    ``start`` to ``end`` ms are held back until ``held_until``, then all arrive, in order,
    1 ms apart, before the later ones."""
    arrivals: list[tuple[float, Sent]] = []
    last = -1.0
    for frame in frames:
        ready = held_until if start <= frame.captured < end else frame.captured + 5
        last = max(ready, last + 1)
        arrivals.append((last, frame))
    return arrivals


def steps(pts: list[int]) -> set[int]:
    return {b - a for a, b in itertools.pairwise(pts)}


def test_a_burst_after_a_stall_keeps_the_frames_rtp_spacing(tmp_path: Path) -> None:
    """The server stalls for 2 s; then the frames held back arrive 1 ms apart."""
    feed = TimedFeed(tmp_path)
    video = stream(Kind.VIDEO, 123_456, 0, 5000)
    audio = stream(Kind.AUDIO, 4_000_000_000, 0, 5000)
    feed.play(in_order(by_capture(video, audio), 4000, 2000, 4000))
    pts = feed.packet_pts()
    assert len(pts["vp8"]) == 150 and len(pts["opus"]) == 250
    assert steps(pts["vp8"]) == {33, 34}, pts["vp8"]
    assert steps(pts["opus"]) == {20}, pts["opus"]


def test_a_wrapping_rtp_timestamp_keeps_pts_increasing_evenly(tmp_path: Path) -> None:
    """RTP timestamps start at random: here both wrap past 2**32 within the first second,
    while frames arrive with a few milliseconds of network jitter."""
    feed = TimedFeed(tmp_path)
    jitter = random.Random(7)
    frames = by_capture(
        stream(Kind.VIDEO, 2**32 - 20 * VIDEO_TICKS, 0, 2000),
        stream(Kind.AUDIO, 2**32 - 30 * AUDIO_TICKS, 0, 2000),
    )
    assert any(f.rtp < VIDEO_TICKS * 20 for f in frames if f.kind is Kind.VIDEO)
    feed.play([(f.captured + jitter.uniform(0, 15), f) for f in frames])
    pts = feed.packet_pts()
    assert steps(pts["vp8"]) == {33, 34}, pts["vp8"]
    assert steps(pts["opus"]) == {20}, pts["opus"]


def test_a_jump_of_the_rtp_base_reanchors_at_arrival(tmp_path: Path) -> None:
    """A sender restarts with a new RTP base (hours away on its clock, forward for video,
    back for audio): its frames stay where they arrive, evenly spaced again at once."""
    feed = TimedFeed(tmp_path)
    jitter = random.Random(11)
    video_base, audio_base = 5_000, 3_000_000_000
    before = by_capture(
        stream(Kind.VIDEO, video_base, 0, 2000), stream(Kind.AUDIO, audio_base, 0, 2000)
    )
    after = by_capture(
        stream(Kind.VIDEO, video_base + 1_500_000_000, 2000, 4000),
        stream(Kind.AUDIO, audio_base - 1_500_000_000, 2000, 4000),
    )
    arrivals = [(f.captured + jitter.uniform(0, 15), f) for f in before + after]
    feed.play(arrivals)
    pts = feed.packet_pts()
    for codec, step in (("vp8", {33, 34}), ("opus", {20})):
        kind = Kind.VIDEO if codec == "vp8" else Kind.AUDIO
        arrived = [at for at, f in arrivals if f.kind is kind]
        assert all(abs(p - at) < 50 for p, at in zip(pts[codec], arrived, strict=True))
        half = len(pts[codec]) // 2
        assert steps(pts[codec][:half]) == step, pts[codec][:half]
        assert steps(pts[codec][half + 1 :]) == step, pts[codec][half:]  # from the jump on


@pytest.mark.parametrize("late", [Kind.VIDEO, Kind.AUDIO])
def test_a_seats_audio_and_video_stay_on_one_clock(tmp_path: Path, late: Kind) -> None:
    """One stream's frames wait 2 s (a lost packet resent, a sender's pacer), then arrive
    together; the other's keep arriving on time. Their RTP clocks are unrelated."""
    feed = TimedFeed(tmp_path)
    video = stream(Kind.VIDEO, 777, 0, 5000)
    audio = stream(Kind.AUDIO, 2_500_000_000, 0, 5000)
    held = {kind: (3000, 1000, 3000) if kind is late else () for kind in Kind}
    feed.play(in_order(video, *held[Kind.VIDEO]) + in_order(audio, *held[Kind.AUDIO]))
    pts = feed.packet_pts()
    # pts minus capture time: the same for both streams, within the 100 ms lip sync needs
    offsets = [p - f.captured for p, f in zip(pts["vp8"], video, strict=True)]
    offsets += [p - f.captured for p, f in zip(pts["opus"], audio, strict=True)]
    assert max(offsets) - min(offsets) < 100, (min(offsets), max(offsets))
    assert steps(pts["vp8"]) == {33, 34} and steps(pts["opus"]) == {20}


@pytest.mark.parametrize("late", [Kind.VIDEO, Kind.AUDIO])
def test_a_stream_far_behind_the_other_still_gives_blocks_in_time_order(
    tmp_path: Path, late: Kind
) -> None:
    """Frames held back longer than `MAX_SKEW_MS` go in behind what was written of their
    stream (`packet_pts` checks the order); then both keep their spacing."""
    feed = TimedFeed(tmp_path)
    video = stream(Kind.VIDEO, 31_337, 0, 8000)
    audio = stream(Kind.AUDIO, 1_000_000, 0, 8000)
    held = {kind: (5000, 1000, 5000) if kind is late else () for kind in Kind}
    feed.play(in_order(video, *held[Kind.VIDEO]) + in_order(audio, *held[Kind.AUDIO]))
    pts = feed.packet_pts()
    assert len(pts["vp8"]) == len(video) and len(pts["opus"]) == len(audio)
    assert steps([p for p in pts["vp8"] if p > 6500]) == {33, 34}
    assert steps([p for p in pts["opus"] if p > 6500]) == {20}


def test_a_sender_whose_rtp_clock_runs_slow_stays_near_the_session_clock(
    tmp_path: Path,
) -> None:
    """A sender that cannot keep up sends 4 s of media over 8 s: its frames stay within
    `MAX_SKEW_MS` of their arrival, and the segment spans the 8 s it recorded, so the
    session's events stay within its replay."""
    feed = TimedFeed(tmp_path)
    frames = by_capture(stream(Kind.VIDEO, 0, 0, 4000), stream(Kind.AUDIO, 0, 0, 4000))
    arrivals = [(f.captured * 2.0, f) for f in frames]
    feed.play(arrivals)
    pts = feed.packet_pts()
    for codec, kind in (("vp8", Kind.VIDEO), ("opus", Kind.AUDIO)):
        arrived = [at for at, f in arrivals if f.kind is kind]
        lags = [at - p for p, at in zip(pts[codec], arrived, strict=True)]
        assert max(lags) <= MAX_SKEW_MS + 1, max(lags)
    [segment] = feed.recorder.segments
    assert segment.duration_ms > 7900, segment.duration_ms


def test_the_sender_is_asked_for_a_keyframe_every_few_seconds(tmp_path: Path) -> None:
    """A browser sends a keyframe at the start of a call and then only when asked; a
    replay seeking into a long run of delta frames would have to decode all of them."""
    feed = TimedFeed(tmp_path)
    asked: list[int] = []
    feed.recorder.set_keyframe_requester(
        lambda seat: asked.append(round((feed.now - 100.0) * 1000))
    )
    answered_at = 4000  # the sender's answer to the requests arrives then
    for frame in stream(Kind.VIDEO, 0, 0, 7000):
        keyframe = frame.captured in (0, answered_at)
        data = feed.video[0 if keyframe else 1]
        feed.now = 100.0 + frame.captured / 1000
        encoded = EncodedFrame(data, frame.rtp, Fraction(1, 90000), keyframe)
        feed.recorder.on_frame(Seat.APPLICANT, Kind.VIDEO, encoded)
    interval = round(KEYFRAME_SECONDS * 1000)
    assert asked, "no keyframe asked for in 7 s of delta frames"
    assert interval <= asked[0] < interval + 50, asked
    assert not [at for at in asked if answered_at <= at < answered_at + interval], asked
    assert max(asked) >= answered_at + interval, asked


def test_every_video_frame_lasts_until_the_next(tmp_path: Path) -> None:
    """A browser's camera frames come irregularly. Browsers' WebM parsers guess how long a
    cluster's last video frame lasts and take a later next frame for a break in the
    stream, dropping video until a keyframe; so each frame carries its exact duration."""
    feed = TimedFeed(tmp_path)
    gaps = random.Random(3)
    captured, frames = 0, []
    while captured < 6000:
        frames.append(Sent(Kind.VIDEO, captured, captured * 90))
        captured += gaps.choice((33, 33, 66, 150, 400))
    frames += stream(Kind.AUDIO, 0, 0, 6000)
    feed.play([(f.captured + 5, f) for f in by_capture(frames)])
    feed.recorder.close()
    [segment] = feed.recorder.segments
    path = feed.directory / segment.file
    plain = path.with_suffix("")
    with path.open("rb") as sealed:
        plain.write_bytes(b"".join(AgeReader(sealed, [feed.identity])))
    video = [(pts, duration) for track, pts, duration in blocks(plain.read_bytes()) if track == 1]
    timed = [
        (pts, duration, after)
        for (pts, duration), (after, _) in itertools.pairwise(video)
        if duration is not None
    ]
    assert len(timed) == len(video) - 1, video
    assert all(duration == after - pts for pts, duration, after in timed), timed


def ebml_elements(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(id, payload start, payload end) of each element from ``start``; an element of
    unknown size runs to ``end``."""
    at = start
    while at < end:
        length = 9 - data[at].bit_length()
        element_id = int.from_bytes(data[at : at + length], "big")
        at += length
        length = 9 - data[at].bit_length()
        size = int.from_bytes(data[at : at + length], "big") & ((1 << (7 * length)) - 1)
        at += length
        stop = end if size == (1 << (7 * length)) - 1 else at + size
        yield element_id, at, stop
        at = stop


def blocks(webm: bytes) -> Iterator[tuple[int, int, int | None]]:
    """Each block of a WebM as written: its track, pts (ms) and BlockDuration if any."""
    for element_id, start, end in ebml_elements(webm, 0, len(webm)):
        if element_id != 0x18538067:  # Segment
            continue
        for cluster_id, c_start, c_end in ebml_elements(webm, start, end):
            if cluster_id != 0x1F43B675:
                continue
            timestamp = 0
            for child, b_start, b_end in ebml_elements(webm, c_start, c_end):
                if child == 0xE7:
                    timestamp = int.from_bytes(webm[b_start:b_end], "big")
                found: list[tuple[bytes, int | None]] = []
                if child == 0xA3:
                    found.append((webm[b_start:b_end], None))
                elif child == 0xA0:
                    parts = {i: webm[s:e] for i, s, e in ebml_elements(webm, b_start, b_end)}
                    given = parts.get(0x9B)
                    found.append((parts[0xA1], int.from_bytes(given, "big") if given else None))
                for block, lasts in found:
                    relative = int.from_bytes(block[1:3], "big", signed=True)
                    yield block[0] & 0x7F, timestamp + relative, lasts


def test_lost_audio_packets_are_filled_with_silence(tmp_path: Path) -> None:
    """Two or more audio packets lost in a row leave a gap that browsers' WebM parsers take
    for a break in the file (they drop the video until its next keyframe and stop playing
    at the hole): the recorder puts a silent packet where each of them was lost."""
    feed = TimedFeed(tmp_path)
    audio = stream(Kind.AUDIO, 99, 0, 4000)
    lost = {audio[n].captured for n in (20, 21, 60, 61, 62, 63, 64, 150)}
    frames = by_capture(stream(Kind.VIDEO, 5, 0, 4000), audio)
    feed.play(
        [(f.captured + 5, f) for f in frames if f.captured not in lost or f.kind is Kind.VIDEO]
    )
    pts = feed.packet_pts(fillers=True)
    # a single packet lost is no break (a gap as long as the packet before it)
    assert pts["opus"] == [f.captured for f in audio if f is not audio[150]], steps(pts["opus"])
    filled = sorted(lost - {audio[150].captured})
    assert sorted(set(pts["opus"]) - set(feed.packet_pts()["opus"])) == filled
    [segment] = feed.recorder.segments
    assert segment.audio_frames == len(audio) - 1


def clusters(webm: bytes) -> list[list[int]]:
    """The pts (ms) of each cluster's blocks, cluster by cluster, as written."""
    found: list[list[int]] = []
    for element_id, start, end in ebml_elements(webm, 0, len(webm)):
        if element_id != 0x18538067:  # Segment
            continue
        for cluster_id, c_start, c_end in ebml_elements(webm, start, end):
            if cluster_id != 0x1F43B675:
                continue
            timestamp, times = 0, []
            for child, b_start, b_end in ebml_elements(webm, c_start, c_end):
                if child == 0xE7:
                    timestamp = int.from_bytes(webm[b_start:b_end], "big")
                    continue
                if child == 0xA3:
                    block = webm[b_start:b_end]
                elif child == 0xA0:
                    parts = {i: webm[s:e] for i, s, e in ebml_elements(webm, b_start, b_end)}
                    block = parts[0xA1]
                else:
                    continue
                times.append(timestamp + int.from_bytes(block[1:3], "big", signed=True))
            found.append(times)
    return found
