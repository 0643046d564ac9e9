"""The interview's one lifecycle, driven through the real server as pages drive it: a take
seats everyone at once, "End" keeps each agency's decision, nothing reopens an ended
interview, time makes no-shows and hands overdue decisions over; and whatever happens,
the store says what the journal (the session record) says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from common.names import Agency, RoomId, Seat
from server.appkeys import LIVES, RECORDS
from server.interview_actions import Interrupt, action_from
from server.interview_state import Phase
from server.lifecycle import replay
from server.types import ApplicationStatus, InterviewMode, InterviewState
from signalling import messages as m

from .calls import Seated, join, join_and_call, officer_who_took, open_socket, waiting_applicant
from .fakes import Client, World, add_applications, application, jpeg_image
from .media import SyntheticParticipant


@dataclass
class Call:
    world: World
    interview_id: str
    applicant: Seated
    officers: dict[Agency, Client]
    sockets: dict[Agency, Seated]
    person: SyntheticParticipant


@pytest.fixture
async def call(world: World) -> AsyncIterator[Call]:
    """A joint interview whose applicant waited, was brought in by the officers' takes and
    joined the call with media; both officers joined the room."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    applicant = await waiting_applicant(world, token)
    officers, sockets = {}, {}
    for agency in Agency:
        officers[agency] = await officer_who_took(world, interview_id, agency)
        sockets[agency] = await open_socket(world, officers[agency])
        await join(sockets[agency], interview_id)
    await applicant.expect(m.Paired)
    person = SyntheticParticipant(Seat.APPLICANT)
    await join_and_call(applicant, interview_id, person)
    await world.server.app[LIVES].drain()
    yield Call(world, interview_id, applicant, officers, sockets, person)
    await person.close()


async def decide(client: Client, interview_id: str) -> int:
    response = await client.post(
        f"/api/interviews/{interview_id}/decision",
        json={"verdict": "approve", "reason_codes": []},
    )
    return response.status


async def queue(client: Client) -> dict[str, list[dict[str, object]]]:
    data: dict[str, list[dict[str, object]]] = await (await client.get("/api/officer/queue")).json()
    return data


async def test_a_take_by_both_officers_brings_the_waiting_applicant_in_at_once(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    applicant = await waiting_applicant(world, token)
    await applicant.expect(m.Waiting)
    await officer_who_took(world, interview_id, Agency.CBSA)
    info = await (await applicant.client.get("/api/applicant/interview")).json()
    assert info["next"] == "wait"  # one officer is not a call
    await officer_who_took(world, interview_id, Agency.CBP)
    paired = await applicant.expect(m.Paired)  # pushed: no reload, no poll
    assert paired == m.Paired(interview_id=interview_id, seat=Seat.APPLICANT)
    info = await (await applicant.client.get("/api/applicant/interview")).json()
    assert info["next"] == "join"


async def test_officers_cannot_decide_on_an_applicant_who_never_joined(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    await waiting_applicant(world, token)
    cbsa = await officer_who_took(world, interview_id, Agency.CBSA)
    await officer_who_took(world, interview_id, Agency.CBP)
    response = await cbsa.post(
        f"/api/interviews/{interview_id}/decision",
        json={"verdict": "approve", "reason_codes": []},
    )
    assert response.status == 409
    assert "has not joined" in (await response.json())["error"]["message"]
    assert await world.store.decisions.for_interview(interview_id) == {}


async def test_ending_before_the_other_agency_decides_keeps_its_decision(call: Call) -> None:
    world, interview_id = call.world, call.interview_id
    assert await decide(call.officers[Agency.CBSA], interview_id) == 201
    await call.sockets[Agency.CBSA].ws.send_str(m.encode(m.End()))
    assert await call.sockets[Agency.CBP].expect(m.Ended) == m.Ended(by="cbsa", next="done")
    await world.server.app[LIVES].drain()
    # The applicant's part is over; the CBP officer still owes the decision.
    info = await (await call.applicant.client.get("/api/applicant/interview")).json()
    assert info["next"] == "done"
    cbp_queue = await queue(call.officers[Agency.CBP])
    assert [i["id"] for i in cbp_queue["awaiting_decision"]] == [interview_id]
    assert cbp_queue["in_call"] is None
    shown = await (await call.officers[Agency.CBP].get(f"/api/interviews/{interview_id}")).json()
    assert shown["awaiting_your_decision"] is True and shown["phase"] == "awaiting_decisions"
    stored = await world.store.interviews.get(interview_id)
    assert stored.state is InterviewState.IN_PROGRESS
    assert (await world.store.applications.get("NX-0001")).status is ApplicationStatus.SCHEDULED

    assert await decide(call.officers[Agency.CBP], interview_id) == 201
    stored = await world.store.interviews.get(interview_id)
    assert stored.state is InterviewState.COMPLETED and stored.life.phase is Phase.CLOSED
    assert (await world.store.applications.get("NX-0001")).status is ApplicationStatus.APPROVED
    assert (await queue(call.officers[Agency.CBP]))["awaiting_decision"] == []


async def test_nothing_reopens_an_ended_call_or_a_closed_interview(call: Call) -> None:
    world, interview_id = call.world, call.interview_id
    await call.sockets[Agency.CBP].ws.send_str(m.encode(m.End()))
    await call.applicant.expect(m.Ended)
    await call.person.close()
    await world.server.app[LIVES].drain()
    journal_before = len(world.server.app[RECORDS].journal(RoomId(interview_id)))
    # The applicant and an officer try to come back into the ended call.
    for seated in (call.applicant, call.sockets[Agency.CBSA]):
        for message in (m.Join(interview_id=interview_id), m.Offer(sdp="v=0")):
            await seated.ws.send_str(m.encode(message))
            refused = await seated.expect(m.Error)
            assert isinstance(refused, m.Error) and refused.code == "conflict", refused
    assert len(world.server.app[RECORDS].journal(RoomId(interview_id))) == journal_before
    for agency in Agency:
        assert await decide(call.officers[agency], interview_id) == 201
    still = await call.officers[Agency.CBSA].post(
        f"/api/interviews/{interview_id}/stills",
        data=jpeg_image(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert still.status == 409
    consent = await call.applicant.client.post(
        "/api/applicant/consent", json={"text_version": "2026-11-01"}
    )
    assert consent.status == 409
    assert "complete" in (await consent.json())["error"]["message"]
    again = await call.officers[Agency.CBSA].post(
        f"/api/interviews/{interview_id}/decision",
        json={"verdict": "deny", "reason_codes": ["CA-OTH"]},
    )
    assert again.status == 409
    journal = world.server.app[RECORDS].journal(RoomId(interview_id))
    assert journal[-1]["kind"] == "close"


async def test_a_double_take_or_a_double_end_changes_nothing(call: Call) -> None:
    world, interview_id = call.world, call.interview_id
    again = await call.officers[Agency.CBSA].post(f"/api/interviews/{interview_id}/take")
    assert again.status == 200
    for _ in range(2):
        await call.sockets[Agency.CBSA].ws.send_str(m.encode(m.End()))
    await call.sockets[Agency.CBSA].expect(m.Ended)
    await world.server.app[LIVES].drain()
    kinds = [event["kind"] for event in world.server.app[RECORDS].journal(RoomId(interview_id))]
    assert kinds.count("seat") == 2 and kinds.count("end") == 1 and kinds.count("call-start") == 1


async def test_an_applicant_who_does_not_come_is_a_no_show_and_can_be_invited_again(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    lives = world.server.app[LIVES]
    await lives.sweep()
    assert (await world.store.interviews.get(interview_id)).life.phase is Phase.SCHEDULED
    world.clock.advance(world.settings.no_show_minutes * 60)
    await lives.sweep()
    missed = await world.store.interviews.get(interview_id)
    assert missed.state is InterviewState.NO_SHOW and missed.life.phase is Phase.NO_SHOW
    link = await (await world.client()).get(f"/i/{token}")
    assert link.status == 410 and "missed" in await link.text()
    officer = await world.client()
    await world.sign_in(officer, await world.add_officer("cbsa.noshow", Agency.CBSA))
    assert (await queue(officer))["interviews"] == []
    again, _ = await world.invite("NX-0001")
    assert (await world.store.interviews.get(again)).life.phase is Phase.SCHEDULED


async def test_an_applicant_in_the_waiting_room_is_never_a_no_show(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    applicant = await waiting_applicant(world, token)
    await applicant.expect(m.Waiting)
    world.clock.advance(3600)
    await world.server.app[LIVES].sweep()
    assert (await world.store.interviews.get(interview_id)).life.phase is Phase.WAITING


async def test_an_overdue_decision_is_offered_to_the_agencys_other_officers(call: Call) -> None:
    world, interview_id = call.world, call.interview_id
    await call.sockets[Agency.CBSA].ws.send_str(m.encode(m.End()))
    await call.sockets[Agency.CBP].expect(m.Ended)
    await world.server.app[LIVES].drain()
    account = await world.add_officer("cbsa.two", Agency.CBSA)

    async def signed_in_colleague() -> Client:
        colleague = await world.client()
        await world.sign_in(colleague, account)
        colleague.session.headers["X-CSRF-Token"] = await world.csrf(colleague)
        return colleague

    colleague = await signed_in_colleague()
    assert (await queue(colleague))["offered"] == []
    early = await colleague.post(f"/api/interviews/{interview_id}/take-decision")
    assert early.status == 403  # not overdue: not theirs to see yet
    world.clock.advance(24 * 3600)  # past the end of the working day (sessions ended too)
    colleague = await signed_in_colleague()
    offered = (await queue(colleague))["offered"]
    assert [i["id"] for i in offered] == [interview_id]
    assert offered[0]["officer"] == "Cbsa.One"  # the holder, by name
    taken = await colleague.post(f"/api/interviews/{interview_id}/take-decision")
    assert taken.status == 200, await taken.text()
    stored = await world.store.interviews.get(interview_id)
    found = await world.store.accounts.by_username("cbsa.two")
    assert found is not None
    colleague_id = found.id
    assert stored.cbsa_officer_id == colleague_id  # the first officer may decide no more
    assert await decide(colleague, interview_id) == 201
    decision = (await world.store.decisions.for_interview(interview_id))[Agency.CBSA]
    assert decision.officer_id == colleague_id


async def test_the_store_says_what_the_journal_says_through_a_whole_interview(
    call: Call,
) -> None:
    world, interview_id = call.world, call.interview_id
    await call.sockets[Agency.CBSA].ws.send_str(m.encode(m.End()))
    await call.applicant.expect(m.Ended)
    for agency in Agency:
        assert await decide(call.officers[agency], interview_id) == 201
    await world.server.app[LIVES].drain()
    await assert_store_follows_journal(world, interview_id)


async def assert_store_follows_journal(world: World, interview_id: str) -> None:
    """The life SQLite keeps is the journal's actions replayed, and SQLite's events are
    the journal's lifecycle events, in order."""
    journal = world.server.app[RECORDS].journal(RoomId(interview_id))
    stored = await world.store.interviews.get(interview_id)
    actions = [a for e in journal if (a := action_from(e.get("action", {}))) is not None]
    assert replay(stored.mode, actions) == stored.life
    lifecycle_kinds = [e["kind"] for e in journal if "action" in e or "after" in e]
    stored_events = await world.store.events.for_interview(interview_id)
    assert [e.kind for e in stored_events] == lifecycle_kinds
    first_details = [e.detail for e in stored_events if "action" in e.detail]
    assert json.dumps([d["action"] for d in first_details]) == json.dumps(
        [e["action"] for e in journal if "action" in e]
    )


async def test_two_step_cbsa_ends_undecided_and_the_cbp_step_opens_once_cbsa_decides(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001", mode=InterviewMode.TWO_STEP)
    applicant = await waiting_applicant(world, token)
    cbsa = await officer_who_took(world, interview_id, Agency.CBSA)
    cbsa_socket = await open_socket(world, cbsa)
    await join(cbsa_socket, interview_id)
    await applicant.expect(m.Paired)
    person = SyntheticParticipant(Seat.APPLICANT)
    try:
        await join_and_call(applicant, interview_id, person)
        await world.server.app[LIVES].drain()
        await cbsa_socket.ws.send_str(m.encode(m.End()))
        assert await applicant.expect(m.Ended) == m.Ended(by="cbsa", next="cbp")
    finally:
        await person.close()
    await applicant.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    tab = await open_socket(world, applicant.client)  # a reload: a page that never joined
    await tab.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    cbp = await world.client()
    await world.sign_in(cbp, await world.add_officer("cbp.one", Agency.CBP))
    assert (await queue(cbp))["interviews"] == []  # CBSA has not decided yet
    assert await decide(cbsa, interview_id) == 201
    # Told at once: the applicant's page asks for its place for the CBP step; it hears
    # nothing of the decision itself (a message that gets an error reply closes the look).
    await tab.ws.send_str(m.encode(m.Leave()))
    heard = []
    while not isinstance(message := await tab.receive(), m.Error):
        heard.append(message)
    assert m.Ended(by="cbsa", next="cbp") in heard
    assert not any(isinstance(message, m.Updated) for message in heard), heard
    await applicant.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    await world.server.app[LIVES].drain()
    assert [i["id"] for i in (await queue(cbp))["interviews"]] == [interview_id]
    await assert_store_follows_journal(world, interview_id)


async def test_an_interview_that_ends_without_a_decision_keeps_no_draft(call: Call) -> None:
    world, interview_id = call.world, call.interview_id
    draft = await call.officers[Agency.CBSA].put(
        f"/api/interviews/{interview_id}/draft",
        json={"verdict": "refer", "reason_codes": [], "notes": "half a thought"},
    )
    assert draft.status == 200
    await call.person.close()
    await world.server.app[LIVES].act(interview_id, Interrupt())
    await world.server.app[LIVES].drain()
    for agency in Agency:
        account = await world.store.interviews.get(interview_id)
        officer = account.officer_for(agency)
        assert officer is not None
        assert await world.store.drafts.get(interview_id, officer) is None
