"""The export of an interview the server crashed in and resumed: each participant's WebM
shows the outage as a gap where it was, on the session's one timeline, and the export
names the segment the crash cut short. The record itself verifies (no fault) and its
``outage`` event states how long the outage lasted.

A real `nexus-interview serve` process killed with SIGKILL and started again on the same
data directory, three aiortc participants before and after, the real `records export`
command (with the composite) and ffprobe on what it writes."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from datetime import datetime
from pathlib import Path

from yarl import URL

from common.names import Kind, Seat
from recordings.export import export_session
from recordings.keys import read_identity_file
from recordings.session_record import verify_session
from server.session_records import checkpoint_signer

from . import served
from .fakes import nexus_interview
from .media import SyntheticParticipant, wait_for
from .served import (
    FRAMES_PER_SECOND,
    Browser,
    Scene,
    call_started,
    everyone_in_call,
    journal,
    kill_9,
    serve,
    server_verifier,
    stop,
    up,
)
from .test_recorder import ffprobe_json, tool

scene = served.scene  # the fixture: a data directory, officers, an invitation

DOWN_SECONDS = 2.0  # the server stays down at least this long
TOLERANCE_MS = 150  # a few frames: timestamps are rounded to ms, frames are 33 ms apart
SAME_TIMELINE_MS = 5  # seats placed on one timeline agree to rounding


def video_times_ms(webm: Path) -> list[int]:
    """The video packets' timestamps (ms) as ffprobe reads them from the file."""
    done = subprocess.run(
        [
            tool("ffprobe"),
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            str(webm),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(round(float(line) * 1000) for line in done.stdout.split() if line)


def unix_ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


async def media_flowing(people: dict[Seat, SyntheticParticipant], seconds: float) -> None:
    """Everyone has received ``seconds`` more of each other seat's video."""
    wanted = {
        (seat, other): people[seat].got(other, Kind.VIDEO).frames + int(seconds * FRAMES_PER_SECOND)
        for seat in Seat
        for other in Seat
        if other is not seat
    }
    await wait_for(
        lambda: all(people[s].got(o, Kind.VIDEO).frames >= n for (s, o), n in wanted.items()),
        within=30,
    )


async def crashed_and_resumed(scene: Scene) -> Path:
    """An interview whose server was killed mid-call, down for `DOWN_SECONDS`, started
    again, the call resumed by everyone and ended by the CBSA officer."""
    settings = scene.settings
    base = URL(settings.public_url)
    server = serve(settings)
    browsers: dict[Seat, Browser] = {}
    before = {seat: SyntheticParticipant(seat) for seat in Seat}
    after = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, before)
        await media_flowing(before, 1.5)
        kill_9(server)
        for person in before.values():
            await person.close()
        await asyncio.sleep(DOWN_SECONDS)
        server = serve(settings)
        await up(settings, server)
        await everyone_in_call(scene, browsers, after)
        await media_flowing(after, 1.5)
        await browsers[Seat.CBSA].end()
    finally:
        stop(server)
        for person in [*before.values(), *after.values()]:
            await person.close()
        for browser in browsers.values():
            await browser.close()
    return settings.data_dir / "records" / scene.interview_id


def largest_gap(times: list[int]) -> tuple[int, int]:
    """The (last before, first after) timestamps around the longest pause."""
    return max(itertools.pairwise(times), key=lambda pair: pair[1] - pair[0])


async def test_the_export_of_a_crashed_and_resumed_interview_shows_the_outage_where_it_was(
    scene: Scene,
) -> None:
    session = await crashed_and_resumed(scene)
    verifier = server_verifier(scene.settings)

    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert not result.failed, result.problems
    events = journal(session)
    outage = next(event for event in events if event["kind"] == "outage")
    assert outage["seconds"] >= DOWN_SECONDS, outage
    since_ms = unix_ms(outage["since"])
    outage_ms = round(outage["seconds"] * 1000)
    cut_by_crash = {
        event["seat"]: event["file"]
        for event in events
        if event["kind"] == "segment" and event["file"] in outage["recovered_files"]
    }
    assert set(cut_by_crash) == {seat.value for seat in Seat}, outage
    resumed: dict[
        str, int
    ] = {}  # each seat's first segment after the restart: its wall-clock start
    for event in events[events.index(outage) :]:
        if event["kind"] == "segment" and not event.get("recovered"):
            resumed.setdefault(event["seat"], event["started_at_ms"])
    joined = {
        e["seat"]: unix_ms(e["at"]) for e in events[: events.index(outage)] if e["kind"] == "join"
    }

    out = session.parent / "export"
    done = await asyncio.to_thread(
        nexus_interview,
        "records",
        "export",
        str(session),
        "--identity",
        str(scene.keys["audit"]),
        "--out",
        str(out),
        "--key",
        checkpoint_signer(scene.settings.data_dir / "checkpoint-signing.pem").verifier_key,
        "--composite",
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split(":", 1)[0]: line for line in done.stdout.splitlines()}
    exported = await asyncio.to_thread(
        export_session, session, read_identity_file(scene.keys["audit"]), out / "again"
    )

    origins = {}
    for item in exported:
        line = lines[str(out / f"{item.seat}.webm")]
        assert f"({cut_by_crash[item.seat]} was cut short by a crash" in line, line
        assert item.cut_short == (cut_by_crash[item.seat],), item
        times = await asyncio.to_thread(video_times_ms, out / f"{item.seat}.webm")
        assert times == await asyncio.to_thread(video_times_ms, item.path)
        last_before, first_after = largest_gap(times)
        # where the file's media after the restart begins, in wall-clock time (its
        # segment's start is exact): the seats must agree on it
        origins[item.seat] = resumed[item.seat] - (item.offset_ms + first_after)
        assert first_after - last_before >= outage_ms - TOLERANCE_MS, (item.seat, times)
    origin = min(origins.values())
    assert max(origins.values()) - origin <= SAME_TIMELINE_MS, origins
    for item in exported:
        times = await asyncio.to_thread(video_times_ms, item.path)
        last_before, first_after = largest_gap(times)
        # the media cut by the crash ends where the outage began, after the seat joined
        assert origin + item.offset_ms + last_before <= since_ms + TOLERANCE_MS, item.seat
        assert origin + item.offset_ms + times[0] >= joined[item.seat] - TOLERANCE_MS, item.seat
        assert origin + item.offset_ms + first_after >= since_ms + outage_ms - TOLERANCE_MS
    # the side-by-side composite runs on the same timeline: from the first media before
    # the crash to the end of the last after it, the outage included
    last_end = max(
        event["started_at_ms"] + event["duration_ms"]
        for event in events
        if event["kind"] == "segment" and "duration_ms" in event
    )
    composite = await asyncio.to_thread(ffprobe_json, out / "composite.webm")
    span_ms = last_end - origin
    assert abs(float(composite["format"]["duration"]) * 1000 - span_ms) <= 500, span_ms
