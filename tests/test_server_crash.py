"""`kill -9` of the whole interview server mid-interview: the session record it leaves
verifies as incomplete, naming its last good checkpoint, and export recovers every
participant's media up to about the last second. Started again on the same data
directory, the server resumes the interview: the outage is in its record, the
participants rejoin and finish it, and the record verifies; a call nobody comes back to
is marked interrupted.

A real `nexus-interview serve` process (recipients configured, nothing mocked) with three
aiortc participants over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from yarl import URL

from common.names import Agency, Kind, Seat
from recordings.export import export_session
from recordings.keys import read_identity_file
from recordings.session_record import verify_session
from server.store import Store
from server.types import ApplicationStatus, InterviewState

from . import served
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
    server_log,
    server_verifier,
    stop,
    up,
)

scene = served.scene  # the fixture: a data directory, officers, an invitation

LOST_AT_MOST = int(1.5 * FRAMES_PER_SECOND)  # "about one second", with scheduling slack
OUTAGE_WAIT_SECONDS = 2
COMINGS = frozenset({"join", "rejoin"})  # a seat's events as it comes into the call


async def test_kill_9_of_the_server_loses_at_most_about_a_second_of_media(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    server = serve(settings)
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, people)
        await wait_for(
            lambda: people[Seat.CBSA].got(Seat.APPLICANT, Kind.VIDEO).frames >= 90, within=30
        )
        kill_9(server)
        # what the others had received from each seat when the server died
        delivered = {
            seat: max(
                people[other].got(seat, Kind.VIDEO).frames for other in Seat if other is not seat
            )
            for seat in Seat
        }
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()

    session = settings.data_dir / "records" / scene.interview_id
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    assert not result.ok and not result.complete
    # Cut off mid-session: not closed, its last events perhaps past the last checkpoint
    # (the media's progress is written as it comes); never altered.
    assert any(
        "incomplete" in p and ("has not closed" in p or "without a final checkpoint" in p)
        for p in result.problems
    ), result.problems
    assert not any("altered" in p for p in result.problems), result.problems
    exported = await asyncio.to_thread(
        export_session, session, read_identity_file(scene.keys["audit"]), session.parent / "out"
    )
    recovered = {Seat(item.seat): item for item in exported}
    for seat in Seat:
        assert recovered[seat].recovered_from_crash
        print(seat, "delivered", delivered[seat], "recovered", recovered[seat].video_frames)
        assert recovered[seat].video_frames >= delivered[seat] - LOST_AT_MOST, (
            seat,
            recovered[seat].video_frames,
            delivered[seat],
        )


async def test_after_a_kill_9_the_interview_resumes_records_the_outage_and_verifies(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    session = settings.data_dir / "records" / scene.interview_id
    server = serve(settings)
    browsers: dict[Seat, Browser] = {}
    before = {seat: SyntheticParticipant(seat) for seat in Seat}
    after = {seat: SyntheticParticipant(seat) for seat in Seat}
    decided: dict[Agency, Any] = {}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, before)
        kill_9(server)
        media_at_the_crash = {path.name for path in session.glob("*.webm.age")}
        for person in before.values():
            await person.close()

        server = serve(settings)  # same data directory, same address
        await up(settings, server)
        # each page reconnects: a new socket on the same sign-in, a join, a new offer
        await everyone_in_call(scene, browsers, after)
        await browsers[Seat.CBSA].end()
        verdict = {"verdict": "approve", "reason_codes": [], "notes": ""}
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            status, decided[agency] = await browsers[seat].post(
                f"/api/interviews/{scene.interview_id}/decision", verdict
            )
            assert status == 201, decided[agency]
    finally:
        stop(server)
        for person in [*before.values(), *after.values()]:
            await person.close()
        for browser in browsers.values():
            await browser.close()

    # the restarted server stopped cleanly: no traceback, no Python warning
    log = server_log(settings).read_text()
    assert "Traceback" not in log and "Warning:" not in log, log
    assert decided[Agency.CBP]["application_status"] == ApplicationStatus.APPROVED
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    # closed, but given no witness key: nobody outside the server vouches for its length
    assert result.closed and not result.failed, result.problems

    events = journal(session)
    kinds = [event["kind"] for event in events]
    outage_at = kinds.index("outage")
    outage = events[outage_at]
    assert outage["seconds"] > 0, outage
    comings = [(e["kind"], e.get("seat")) for e in events[outage_at:] if e["kind"] in COMINGS]
    assert sorted(comings) == sorted(("rejoin", seat.value) for seat in Seat), comings

    segments = {event["file"]: event for event in events if event["kind"] == "segment"}
    on_disk = {path.name for path in session.glob("*.webm.age")}
    assert media_at_the_crash and media_at_the_crash < on_disk
    assert on_disk == set(segments), on_disk ^ set(segments)
    named_before = {e["file"] for e in events[:outage_at] if "file" in e and not e.get("recovered")}
    cut_off = media_at_the_crash - named_before  # being written when the server died
    assert {segments[name]["seat"] for name in cut_off} == {seat.value for seat in Seat}
    assert all(segments[name].get("recovered") is True for name in cut_off)
    assert set(outage["recovered_files"]) == cut_off

    store = await Store(settings.database_path).open()
    try:
        application_now = await store.applications.get("NX-0001")
        interview = await store.interviews.get(scene.interview_id)
    finally:
        await store.close()
    assert application_now.status is ApplicationStatus.APPROVED
    assert interview.state is InterviewState.COMPLETED


async def test_a_call_nobody_comes_back_to_after_a_kill_9_is_marked_interrupted(
    scene: Scene,
) -> None:
    settings = scene.settings
    base = URL(settings.public_url)
    session = settings.data_dir / "records" / scene.interview_id
    wait = dict(outage_wait_seconds=str(OUTAGE_WAIT_SECONDS))
    server = serve(settings, **wait)
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        browsers = await call_started(scene, base)
        await everyone_in_call(scene, browsers, people)
        kill_9(server)
        server = serve(settings, **wait)
        await up(settings, server)
        await wait_for(
            lambda: "interrupted" in {e["kind"] for e in journal(session)},
            within=OUTAGE_WAIT_SECONDS + 30,
        )
    finally:
        stop(server)
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()

    events = journal(session)
    outage = next(e for e in events if e["kind"] == "outage")
    interrupted = next(e for e in events if e["kind"] == "interrupted")
    waited = datetime.fromisoformat(interrupted["at"]) - datetime.fromisoformat(outage["at"])
    assert waited.total_seconds() >= OUTAGE_WAIT_SECONDS - 0.5, waited
    assert not {e["kind"] for e in events[events.index(outage) :]} & COMINGS
    store = await Store(settings.database_path).open()
    try:
        interview = await store.interviews.get(scene.interview_id)
    finally:
        await store.close()
    assert interview.state is InterviewState.INTERRUPTED
    result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
    assert result.closed and not result.failed, result.problems  # no witness key given
