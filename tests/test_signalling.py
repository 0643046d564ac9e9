"""The WebSocket endpoint with real aiortc clients: who may sit where, the whole call
through signalling, and bad messages answered with errors while other interviews go on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import WSMsgType
from aiortc import RTCConfiguration, RTCPeerConnection

from common.names import Agency, Kind, RoomId, Seat
from media.participant import MAX_CANDIDATES
from server.appkeys import LIVES, ROOMS
from server.types import InterviewMode
from server.views.call_socket import MAX_SOCKETS_PER_PRINCIPAL
from signalling import messages as m

from .calls import (
    Seated,
    consented_applicant,
    join,
    join_and_call,
    open_socket,
    waiting_applicant,
)
from .fakes import World, add_applications, application
from .media import SyntheticParticipant, wait_for


@dataclass
class Setup:
    world: World
    interview_id: str
    other_interview_id: str
    people: dict[Seat, Seated]
    other_applicant: Seated
    unassigned: Seated


@pytest.fixture
async def setup(world: World) -> AsyncIterator[Setup]:
    await add_applications(
        world.store, application("NX-0001"), application("NX-0002", date_of_birth="1970-03-03")
    )
    interview_id, token = await world.invite("NX-0001")
    other_id, other_token = await world.invite("NX-0002")
    people: dict[Seat, Seated] = {Seat.APPLICANT: await waiting_applicant(world, token)}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        client = await world.client()
        await world.sign_in(client, await world.add_officer(f"{seat}.officer", agency))
        csrf = await world.csrf(client)
        taken = await client.post(
            f"/api/interviews/{interview_id}/take", headers={"X-CSRF-Token": csrf}
        )
        assert taken.status == 200
        people[seat] = await open_socket(world, client)
    await people[Seat.APPLICANT].expect(m.Paired)
    other = await world.client()
    await world.confirm_dob(other, other_token, "1970-03-03")
    stranger = await world.client()
    await world.sign_in(stranger, await world.add_officer("cbsa.stranger", Agency.CBSA))
    yield Setup(
        world,
        interview_id,
        other_id,
        people,
        await open_socket(world, other),
        await open_socket(world, stranger),
    )
    # open sockets are closed by the server's on_shutdown (1001, going away)


async def test_a_whole_call_through_signalling(setup: Setup) -> None:
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        for seat in Seat:
            await join_and_call(setup.people[seat], setup.interview_id, people[seat])
        await wait_for(
            lambda: all(
                people[seat].got(other, Kind.VIDEO).frames >= 10
                for seat in Seat
                for other in Seat
                if other is not seat
            ),
            within=30,
        )
        # the applicant hears of the officers' arrival, and of their camera switches
        peer = await setup.people[Seat.APPLICANT].expect(m.Peer)
        assert isinstance(peer, m.Peer) and peer.event == "join"
        await setup.people[Seat.CBSA].ws.send_str(m.encode(m.MediaState(audio=False, video=True)))
        state = await setup.people[Seat.APPLICANT].expect(m.PeerState)
        assert state == m.PeerState(seat="cbsa", audio=False, video=True)
    finally:
        for person in people.values():
            await person.close()
    await setup.world.server.app[LIVES].drain()
    events = await setup.world.store.events.for_interview(setup.interview_id)
    joins = {e.seat: e.detail for e in events if e.kind == "join"}
    assert set(joins) == {"applicant", "cbsa", "cbp"}
    assert joins["cbsa"]["country"] == "CA" and joins["cbp"]["country"] == "US"
    assert "surname" not in json.dumps(joins)


async def test_nobody_sits_in_someone_elses_interview(setup: Setup) -> None:
    answer = await setup.other_applicant.ask(m.Join(interview_id=setup.interview_id))
    assert isinstance(answer, m.Error) and answer.code == "forbidden"
    answer = await setup.unassigned.ask(m.Join(interview_id=setup.interview_id))
    assert isinstance(answer, m.Error) and "not the CBSA officer assigned" in answer.message
    answer = await setup.other_applicant.ask(m.Join(interview_id="iv_" + "0" * 16))
    assert isinstance(answer, m.Error) and answer.code == "not_found"


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("not json", "protocol_error", "not a JSON message"),
        ('{"v": 2, "type": "leave"}', "protocol_error", "at `$.v`"),
        ('{"v": 1, "type": "dance"}', "protocol_error", "Invalid value 'dance'"),
        ('{"v": 1, "type": "offer"}', "protocol_error", "missing required field `sdp`"),
        ('{"v": 1, "type": "offer", "sdp": "x", "extra": 1}', "protocol_error", "unknown field"),
        ('{"v": 1, "type": "offer", "sdp": "v=0"}', "not_in_room", "join an interview first"),
        (
            json.dumps({"v": 1, "type": "offer", "sdp": "x" * 70_000}),
            "protocol_error",
            "larger than 65536",
        ),
    ],
)
async def test_bad_messages_get_an_error_and_the_socket_stays_open(
    setup: Setup, raw: str, code: str, words: str
) -> None:
    seated = setup.people[Seat.APPLICANT]
    answer = await seated.ask(raw)
    assert isinstance(answer, m.Error)
    assert answer.code == code and words in answer.message
    joined = await seated.ask(m.Join(interview_id=setup.interview_id))
    assert isinstance(joined, m.Joined)


@pytest.mark.parametrize(
    ("sdp", "words"),
    [
        ("hello", "not valid SDP"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "exactly one audio track"),
    ],
)
async def test_malformed_sdp_gets_a_clear_error(setup: Setup, sdp: str, words: str) -> None:
    seated = setup.people[Seat.APPLICANT]
    await seated.ask(m.Join(interview_id=setup.interview_id))
    answer = await seated.ask(m.Offer(sdp=sdp))
    assert isinstance(answer, m.Error) and answer.code == "bad_sdp"
    assert words in answer.message


async def test_an_offer_with_the_wrong_sections_is_refused(setup: Setup) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    seated = setup.people[Seat.APPLICANT]
    await seated.ask(m.Join(interview_id=setup.interview_id))
    answer = await seated.ask(m.Offer(sdp=pc.localDescription.sdp))
    await pc.close()
    assert isinstance(answer, m.Error)
    assert "must send exactly one audio track" in answer.message


async def test_garbage_in_one_interview_does_not_disturb_another(setup: Setup) -> None:
    people = {seat: SyntheticParticipant(seat) for seat in (Seat.APPLICANT, Seat.CBSA)}
    try:
        for seat, person in people.items():
            await join_and_call(setup.people[seat], setup.interview_id, person)
        listener = people[Seat.CBSA]
        await wait_for(lambda: listener.got(Seat.APPLICANT, Kind.VIDEO).frames >= 10)
        before = listener.got(Seat.APPLICANT, Kind.VIDEO).frames
        vandal = setup.other_applicant
        await vandal.ws.send_bytes(b"\x00\x01binary")
        for junk in ("{", "[]", '{"v":1,"type":"candidate","candidate":"x"}', "🙂" * 100):
            answer = await vandal.ask(junk)
            assert isinstance(answer, m.Error)
        await asyncio.sleep(0.5)
        await wait_for(lambda: listener.got(Seat.APPLICANT, Kind.VIDEO).frames >= before + 10)
    finally:
        for person in people.values():
            await person.close()


async def test_a_client_that_keeps_sending_garbage_is_disconnected(setup: Setup) -> None:
    vandal = setup.other_applicant
    for _ in range(25):
        await vandal.ws.send_str("{")
    closing = None
    for _ in range(30):
        frame = await vandal.ws.receive(timeout=5)
        if frame.type.name in ("CLOSE", "CLOSED", "CLOSING"):
            closing = frame
            break
    assert closing is not None
    assert vandal.ws.close_code == 1008


async def test_sockets_from_other_sites_are_refused(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    client = await world.client()
    await world.confirm_dob(client, token, "1980-05-17")
    response = await client.get(
        "/ws",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status == 403


async def test_waiting_room_pairs_the_applicant_with_two_free_officers(setup: Setup) -> None:
    world = setup.world
    await add_applications(world.store, application("NX-0003", date_of_birth="1990-09-09"))
    interview_id, token = await world.invite("NX-0003")
    applicant = await consented_applicant(world, token, "1990-09-09")
    officers = {}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        client = await world.client()
        await world.sign_in(client, await world.add_officer(f"{seat}.free", agency))
        officers[seat] = await open_socket(world, client)

    waiting = await applicant.ask(m.Ready(interview_id=interview_id))
    assert waiting == m.Waiting(position=1, estimated_wait_seconds=None)  # nobody on duty
    await officers[Seat.CBSA].ws.send_str(m.encode(m.Available(available=True)))
    assert isinstance(await applicant.expect(m.Waiting), m.Waiting)
    await officers[Seat.CBP].ws.send_str(m.encode(m.Available(available=True)))
    paired = await applicant.expect(m.Paired)
    assert paired == m.Paired(interview_id=interview_id, seat="applicant")
    for seat, socket in officers.items():
        assert await socket.expect(m.Paired) == m.Paired(interview_id=interview_id, seat=seat)
        joined = await socket.ask(m.Join(interview_id=interview_id))
        assert isinstance(joined, m.Joined)  # seated by the pairing: may join at once
    interview = await world.store.interviews.get(interview_id)
    assert interview.cbsa_officer_id is not None and interview.cbp_officer_id is not None


async def test_only_the_applicant_may_queue_for_their_interview(setup: Setup) -> None:
    answer = await setup.other_applicant.ask(m.Ready(interview_id=setup.interview_id))
    assert isinstance(answer, m.Error) and answer.code == "forbidden"
    answer = await setup.unassigned.ask(m.Ready(interview_id=setup.interview_id))
    assert isinstance(answer, m.Error) and "only the invited applicant" in answer.message


async def test_two_step_cbsa_first_then_cbp_in_the_same_interview(world: World) -> None:
    await add_applications(world.store, application("NX-0009", date_of_birth="1985-02-02"))
    interview_id, token = await world.invite("NX-0009", mode=InterviewMode.TWO_STEP)
    applicant = await consented_applicant(world, token, "1985-02-02")
    sockets, clients = {}, {}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        clients[seat] = await world.client()
        await world.sign_in(clients[seat], await world.add_officer(f"{seat}.step", agency))
        sockets[seat] = await open_socket(world, clients[seat])
    await sockets[Seat.CBP].ws.send_str(m.encode(m.Available(available=True)))
    await sockets[Seat.CBSA].ws.send_str(m.encode(m.Available(available=True)))
    await asyncio.sleep(0.2)
    assert await applicant.ask(m.Ready(interview_id=interview_id)) == m.Paired(
        interview_id=interview_id, seat="applicant"
    )
    assert await sockets[Seat.CBSA].expect(m.Paired) == m.Paired(
        interview_id=interview_id, seat="cbsa"
    )
    assert (await world.store.interviews.get(interview_id)).cbp_officer_id is None
    person = SyntheticParticipant(Seat.APPLICANT)
    try:
        await join_and_call(applicant, interview_id, person)
        assert isinstance(await sockets[Seat.CBSA].ask(m.Join(interview_id=interview_id)), m.Joined)
        await world.server.app[LIVES].drain()
        csrf = await world.csrf(clients[Seat.CBSA])
        decided = await clients[Seat.CBSA].post(
            f"/api/interviews/{interview_id}/decision",
            json={"verdict": "approve", "reason_codes": []},
            headers={"X-CSRF-Token": csrf},
        )
        assert decided.status == 201, await decided.text()
        await sockets[Seat.CBSA].ws.send_str(m.encode(m.End()))
        assert await applicant.expect(m.Ended) == m.Ended(by="cbsa", next="cbp")
    finally:
        await person.close()
    # The CBSA step is done: the applicant waits again, now for a CBP officer.
    assert await applicant.ask(m.Ready(interview_id=interview_id)) == m.Paired(
        interview_id=interview_id, seat="applicant"
    )
    assert await sockets[Seat.CBP].expect(m.Paired) == m.Paired(
        interview_id=interview_id, seat="cbp"
    )
    interview = await world.store.interviews.get(interview_id)
    assert interview.cbsa_officer_id is not None and interview.cbp_officer_id is not None


async def test_a_seat_can_be_taken_again_after_the_room_emptied(setup: Setup) -> None:
    person = SyntheticParticipant(Seat.APPLICANT)
    seated = setup.people[Seat.APPLICANT]
    try:
        await join_and_call(seated, setup.interview_id, person)
        await seated.ws.send_str(m.encode(m.Leave()))  # the last one out: the room closes
        await asyncio.sleep(0.3)
        refused = await seated.ask(m.Offer(sdp="v=0"))  # nothing reopens it but a join
        assert isinstance(refused, m.Error) and refused.code == "conflict", refused
        await join(seated, setup.interview_id)

        async def offer(seat: Seat, sdp: str) -> str:
            answer = await seated.ask(m.Offer(sdp=sdp))
            assert isinstance(answer, m.Answer), answer
            return answer.sdp

        await person.connect(offer)  # same socket, new offer: a fresh room answers
    finally:
        await person.close()


async def test_an_officer_ends_the_interview_for_everyone_and_an_applicant_cannot(
    setup: Setup,
) -> None:
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        for seat in Seat:
            await join_and_call(setup.people[seat], setup.interview_id, people[seat])
        await setup.people[Seat.APPLICANT].ws.send_str(m.encode(m.End()))
        refused = await setup.people[Seat.APPLICANT].expect(m.Error)
        assert isinstance(refused, m.Error) and refused.code == "forbidden"
        room = setup.world.server.app[ROOMS].current(RoomId(setup.interview_id))
        assert room is not None
        assert not room.closed
        await setup.people[Seat.CBP].ws.send_str(m.encode(m.End()))
        for seat in Seat:
            ended = await setup.people[seat].expect(m.Ended)
            assert ended == m.Ended(by="cbp", next="done")
        await setup.world.server.app[LIVES].drain()
        events = await setup.world.store.events.for_interview(setup.interview_id)
        ends = [(e.detail["by"], e.detail["next"]) for e in events if e.kind == "end"]
        assert ends == [("cbp", "done")]
        assert room.closed and room.present == []  # everyone's connection closed with it
    finally:
        for person in people.values():
            await person.close()


async def test_a_newcomer_learns_who_has_muted_before_they_joined(setup: Setup) -> None:
    applicant, cbsa = setup.people[Seat.APPLICANT], setup.people[Seat.CBSA]
    joined = await applicant.ask(m.Join(interview_id=setup.interview_id))
    assert isinstance(joined, m.Joined)
    await applicant.ws.send_str(m.encode(m.MediaState(audio=False, video=True)))
    rooms = setup.world.server.app[ROOMS]
    await wait_for(lambda: bool(rooms.states(RoomId(setup.interview_id))))
    joined = await cbsa.ask(m.Join(interview_id=setup.interview_id))
    assert isinstance(joined, m.Joined)
    told = await cbsa.expect(m.PeerState)
    assert told == m.PeerState(seat="applicant", audio=False, video=True)


async def test_the_officers_queue_shows_how_long_each_applicant_has_waited(
    world: World,
) -> None:
    await add_applications(
        world.store, application("NX-0003"), application("NX-0004", date_of_birth="1970-01-01")
    )
    ready_id, token = await world.invite("NX-0003")
    absent_id, _ = await world.invite("NX-0004")
    applicant = await consented_applicant(world, token)
    assert isinstance(await applicant.ask(m.Ready(interview_id=ready_id)), m.Waiting)
    officer = await world.client()
    await world.sign_in(officer, await world.add_officer("cbsa.queue", Agency.CBSA))
    world.clock.advance(150)
    queue = await (await officer.get("/api/officer/queue")).json()
    waited = {i["id"]: i["waiting_seconds"] for i in queue["interviews"]}
    assert waited == {ready_id: 180, absent_id: None}  # 30 s of it were the sign-in's
    assert queue["interviews"][0]["id"] == ready_id  # the one in the waiting room first


async def test_errors_on_a_socket_follow_the_page_s_language(setup: Setup) -> None:
    applicant = setup.people[Seat.APPLICANT]
    english = await applicant.ask(m.Leave())
    assert isinstance(english, m.Error) and english.message == "join an interview first"
    await applicant.ws.send_str(m.encode(m.Language(language="fr")))
    french = await applicant.ask(m.Leave())
    assert isinstance(french, m.Error)
    assert french.message == "joignez-vous d'abord à une entrevue"
    wrong = await applicant.ask('{"v": 1, "type": "language", "language": "de"}')
    assert isinstance(wrong, m.Error) and wrong.code == "protocol_error"


async def test_officers_hear_of_a_decision_at_once_and_the_applicant_does_not(
    setup: Setup,
) -> None:
    person = SyntheticParticipant(Seat.APPLICANT)
    await join_and_call(setup.people[Seat.APPLICANT], setup.interview_id, person)
    for seat in (Seat.CBSA, Seat.CBP):
        joined = await setup.people[seat].ask(m.Join(interview_id=setup.interview_id))
        assert isinstance(joined, m.Joined)
    await setup.world.server.app[LIVES].drain()
    cbsa = setup.people[Seat.CBSA].client
    response = await cbsa.post(
        f"/api/interviews/{setup.interview_id}/decision",
        json={"verdict": "approve", "reason_codes": []},
        headers={"X-CSRF-Token": await setup.world.csrf(cbsa)},
    )
    assert response.status == 201
    for seat in (Seat.CBSA, Seat.CBP):
        assert await setup.people[seat].expect(m.Updated) == m.Updated(what="decision")
    # a message that gets an error reply: everything before it was sent before it
    applicant = setup.people[Seat.APPLICANT]
    await applicant.ws.send_str(m.encode(m.Candidate(candidate="candidate:1", sdp_mid="0")))
    seen: list[m.ServerMessage] = []
    while not seen or not isinstance(seen[-1], m.Error):
        seen.append(m.decode_server(await applicant.ws.receive_str(timeout=10)))
    assert not any(isinstance(message, m.Updated) for message in seen), seen
    await person.close()


def _candidate(text: str, **where: object) -> str:
    return json.dumps({"v": 1, "type": "candidate", "candidate": text, **where})


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (
            _candidate("candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host"),
            "protocol_error",
            "a candidate needs sdp_mid or sdp_mline_index",
        ),
        (
            _candidate("candidate:1 1 udp 2130706431 203.0.113.7 99999 typ host", sdp_mid="0"),
            "bad_sdp",
            "ports run from 1 to 65535",
        ),
        (
            _candidate("candidate:1 1 udp 2130706431 203.0.113.7 -1 typ host", sdp_mline_index=0),
            "bad_sdp",
            "ports run from 1 to 65535",
        ),
    ],
)
async def test_a_candidate_the_server_cannot_use_is_a_client_error_not_ours(
    setup: Setup, caplog: pytest.LogCaptureFixture, raw: str, code: str, words: str
) -> None:
    person = SyntheticParticipant(Seat.APPLICANT)
    seated = setup.people[Seat.APPLICANT]
    try:
        await join_and_call(seated, setup.interview_id, person)
        answer = await seated.ask(raw)
        assert isinstance(answer, m.Error)
        assert answer.code == code and words in answer.message
        await asyncio.sleep(0.3)  # a check to an impossible port fails in the background
    finally:
        await person.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_connection_takes_a_limited_number_of_candidates(setup: Setup) -> None:
    person = SyntheticParticipant(Seat.APPLICANT)
    seated = setup.people[Seat.APPLICANT]
    try:
        await join_and_call(seated, setup.interview_id, person)
        for i in range(MAX_CANDIDATES):  # taken without a reply
            await seated.ws.send_str(
                _candidate(f"candidate:{i} 1 udp 1 203.0.113.{i} 40000 typ host", sdp_mid="0")
            )
        answer = await seated.ask(
            _candidate("candidate:x 1 udp 1 203.0.113.250 40000 typ host", sdp_mid="0")
        )
        assert isinstance(answer, m.Error) and answer.code == "too_many_candidates"
        assert f"at most {MAX_CANDIDATES}" in answer.message
    finally:
        await person.close()


async def test_one_sign_in_holds_a_few_sockets_and_the_next_is_refused_with_the_reason(
    setup: Setup,
) -> None:
    applicant = setup.people[Seat.APPLICANT]
    sockets = [applicant.ws]
    for _ in range(MAX_SOCKETS_PER_PRINCIPAL - 1):
        sockets.append(await applicant.client.ws_connect("/ws"))
    refused = await applicant.client.ws_connect("/ws")
    told = m.decode_server(await refused.receive_str(timeout=10))
    assert isinstance(told, m.Error) and told.code == "too_many_sockets"
    assert "close another tab" in told.message
    closing = await refused.receive(timeout=10)
    assert closing.type is WSMsgType.CLOSE and refused.close_code == 1008
    assert closing.extra == "too many sockets for this sign-in"
    for ws in sockets:  # the ones already open carry on
        still = Seated(applicant.client, ws)
        assert await still.ask(m.Leave()) == m.Error(
            code="not_in_room", message="join an interview first"
        )
    other = await setup.other_applicant.ask(m.Leave())  # another sign-in is not counted
    assert isinstance(other, m.Error) and other.code == "not_in_room"
    await sockets.pop().close()  # a closed tab makes room
    again = Seated(applicant.client, await applicant.client.ws_connect("/ws"))
    assert isinstance(await again.ask(m.Leave()), m.Error)
