"""An ended sign-in ends its sockets and its call at once; an open call keeps a sign-in
alive however long nobody clicks."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSMsgType

from common.names import Kind, RoomId, Seat
from server.appkeys import ROOMS
from server.views import call_socket as handler
from signalling import messages as m

from .calls import Seated, join_and_call, seated_interview
from .fakes import World
from .media import SyntheticParticipant, wait_for


async def _in_call(
    world: World,
) -> tuple[dict[Seat, Seated], str, dict[Seat, SyntheticParticipant]]:
    seated, interview_id = await seated_interview(world)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    for seat in Seat:
        await join_and_call(seated[seat], interview_id, people[seat])
    await wait_for(lambda: people[Seat.APPLICANT].got(Seat.CBSA, Kind.VIDEO).frames >= 5)
    return seated, interview_id, people


async def _signed_out(seated: Seated) -> int | None:
    """The socket's last error code and close code, once the server has closed it."""
    while True:
        frame = await seated.ws.receive(timeout=10)
        if frame.type is WSMsgType.TEXT:
            message = m.decode_server(frame.data)
            if isinstance(message, m.Error):
                assert message.code == "signed_out", message
        elif frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return seated.ws.close_code


async def test_signing_out_in_another_tab_ends_the_officers_socket_and_call(
    world: World,
) -> None:
    seated, interview_id, people = await _in_call(world)
    try:
        officer = seated[Seat.CBSA].client
        csrf = await world.csrf(officer)
        await officer.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
        assert await _signed_out(seated[Seat.CBSA]) == handler.SIGNED_OUT_CLOSE_CODE
        room = world.server.app[ROOMS].current(RoomId(interview_id))
        assert room is not None
        await wait_for(lambda: room.participant(Seat.CBSA) is None)
        assert room.participant(Seat.APPLICANT) is not None  # the others stay
    finally:
        for person in people.values():
            await person.close()


async def test_a_revocation_by_another_process_ends_the_applicants_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "SESSION_CHECK_SECONDS", 0.1)
    seated, interview_id, people = await _in_call(world)
    try:
        # As `sessions revoke --interview` does it: in the store, telling no socket.
        assert await world.store.sessions.end_for_interview(interview_id)
        assert await _signed_out(seated[Seat.APPLICANT]) == handler.SIGNED_OUT_CLOSE_CODE
        room = world.server.app[ROOMS].current(RoomId(interview_id))
        assert room is not None
        await wait_for(lambda: room.participant(Seat.APPLICANT) is None)
        again = await seated[Seat.APPLICANT].client.get("/api/applicant/interview")
        assert again.status == 401
    finally:
        for person in people.values():
            await person.close()


async def test_an_officer_in_a_call_is_never_signed_out_for_being_idle(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "SESSION_CHECK_SECONDS", 0.05)
    seated, _, people = await _in_call(world)
    try:
        idle = world.settings.session_idle_seconds
        for _ in range(4):  # twice the idle timeout, with the call's socket open
            world.clock.advance(idle / 2)
            await asyncio.sleep(0.3)  # several checks of the open socket
        officer = seated[Seat.CBSA].client
        assert (await officer.get("/officer", allow_redirects=False)).status == 200
        assert not seated[Seat.CBSA].ws.closed
    finally:
        for person in people.values():
            await person.close()
