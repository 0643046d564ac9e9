"""A recording that fails mid-call never ends or stalls the call: the failure becomes an
event in the record, an ERROR log line and a count the control plane keeps, the call goes
on, and the record still verifies.

A whole interview through the server (its media worker in-process, through the same
media-plane protocol), recorded to the agencies' real recipients. The failure is injected
into the muxer (WebM's cluster writer raises, as a muxer bug would): nothing else here can
make it fail on demand."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from common.names import Agency, Kind, Seat
from recordings import webm
from recordings.session_record import verify_session
from recordings.tlog import NoteVerifier
from server.appkeys import RECORDS, ROOMS
from signalling import messages as m

from .calls import join_and_call, open_socket, waiting_applicant
from .fakes import World, add_applications, application
from .media import SyntheticParticipant, wait_for
from .test_session_records import record_closed


class MuxerBug(RuntimeError):
    pass


async def test_a_failing_recorder_leaves_the_call_going_and_says_so_in_the_record(
    recorded: tuple[World, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world, _ = recorded
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    sockets = {Seat.APPLICANT: await waiting_applicant(world, token)}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        client = await world.client()
        await world.sign_in(client, await world.add_officer(f"{seat}.iso", agency))
        taken = await client.post(
            f"/api/interviews/{interview_id}/take",
            headers={"X-CSRF-Token": await world.csrf(client)},
        )
        assert taken.status == 200, await taken.text()
        sockets[seat] = await open_socket(world, client)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    loop = asyncio.get_running_loop()
    try:
        for seat in Seat:
            await join_and_call(sockets[seat], interview_id, people[seat])
        await wait_for(lambda: seeing(people, 30), within=30)

        def broken(self: webm.ClusterWriter, *args: object) -> None:
            raise MuxerBug("cluster writer failed")

        caplog.set_level(logging.ERROR)
        monkeypatch.setattr(webm.ClusterWriter, "add", broken)
        failed_at = loop.time()
        plane = world.server.app[ROOMS]
        await wait_for(lambda: plane.recording_failures == 1)
        counted = {seat: received(people, seat) for seat in Seat}
        await asyncio.sleep(3)
        for seat in Seat:
            assert received(people, seat) >= counted[seat] + 60  # two seats, 3 s at 30 fps
            for other in Seat:
                if other is not seat:
                    gap = people[seat].got(other, Kind.VIDEO).longest_gap(failed_at)
                    assert gap < 1.0, (seat, other, gap)
        await sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
        session = world.settings.data_dir / "records" / interview_id
        await wait_for(lambda: record_closed(session))
    finally:
        for person in people.values():
            await person.close()

    assert plane.recording_failures == 1  # once for the room, not once per frame
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cluster writer failed" in r.getMessage() for r in errors), errors
    events = (session / "events.jsonl").read_text()
    assert '"kind":"recording_failed"' in events and "cluster writer failed" in events
    verifier = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    result = await asyncio.to_thread(verify_session, session, [verifier])
    assert not result.failed, result.problems


def seeing(people: dict[Seat, SyntheticParticipant], frames: int) -> bool:
    return all(received(people, seat) >= 2 * frames for seat in Seat)


def received(people: dict[Seat, SyntheticParticipant], seat: Seat) -> int:
    """Video frames ``seat`` has received from the two other seats."""
    return sum(people[seat].got(other, Kind.VIDEO).frames for other in Seat if other is not seat)
