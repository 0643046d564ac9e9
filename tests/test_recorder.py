"""The recorder with real parts: a three-person room recorded to age-encrypted live WebM,
decrypted by the `age` command and read by `ffprobe`; and a recorder killed with SIGKILL
whose file still gives up all but about the last second."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from recordings.age import AgeReader
from recordings.keys import Identity, write_identity_file
from recordings.recorder import Recorder, vp8_dimensions
from signalling.interview import InterviewRoom
from signalling.types import RoomId, Seat

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
    recorder = Recorder(tmp_path / "record", [identity.recipient], segment_seconds=1.0)
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
        assert segment.path.read_bytes().startswith(b"age-encryption.org/v1\n")
        plain = tmp_path / f"{segment.path.stem}"
        subprocess.run(
            [tool("age"), "-d", "-i", str(key), "-o", str(plain), str(segment.path)], check=True
        )
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


def test_after_kill_9_everything_but_about_the_last_second_decrypts_and_plays(
    tmp_path: Path,
) -> None:
    identity = Identity.generate()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_recorder", str(tmp_path), str(identity.recipient)],
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
    assert frames >= recorded - 45, (frames, recorded)  # at most about 1.5 s lost
