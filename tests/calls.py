"""Browsers in a call for tests: a signed-in client with its signalling socket, and the
join-and-offer dance a synthetic participant goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import ClientWebSocketResponse

from common.names import Agency, Seat
from server.appkeys import LIVES
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m

from .fakes import Client, World, add_applications, application
from .media import SyntheticParticipant


@dataclass
class Seated:
    """A signed-in browser with its socket."""

    client: Client
    ws: ClientWebSocketResponse

    async def receive(self) -> m.ServerMessage:
        return m.decode_server(await self.ws.receive_str(timeout=10))

    async def ask(self, message: str | m.Message) -> m.ServerMessage:
        await self.ws.send_str(message if isinstance(message, str) else m.encode(message))
        return await self.receive()

    async def expect(self, kind: type[m.Message]) -> m.Message:
        while True:
            message = await self.receive()
            if isinstance(message, kind):
                return message


async def open_socket(world: World, client: Client) -> Seated:
    return Seated(client, await client.ws_connect("/ws"))


# What the lobby and the other seats tell a socket on their own, between its questions.
CHATTER = (m.Waiting, m.Paired, m.Peer, m.PeerState)


async def join(seated: Seated, interview_id: str) -> m.Joined:
    await seated.ws.send_str(m.encode(m.Join(interview_id=interview_id)))
    while isinstance(answer := await seated.receive(), CHATTER):
        pass
    assert isinstance(answer, m.Joined), answer
    return answer


async def join_and_call(seated: Seated, interview_id: str, person: SyntheticParticipant) -> None:
    await join(seated, interview_id)

    async def offer(seat: Seat, sdp: str) -> str:
        answer = await seated.ask(m.Offer(sdp=sdp))
        assert isinstance(answer, m.Answer), answer
        return answer.sdp

    await person.connect(offer)


async def officer_who_took(world: World, interview_id: str, agency: Agency) -> Client:
    """A new officer of ``agency`` (``cbsa.one`` or ``cbp.one``), signed in, who took the
    interview; the client sends its CSRF token with every request."""
    client = await world.client()
    officer = await world.add_officer(f"{Seat.of(agency)}.one", agency)
    assert (await world.sign_in(client, officer)).status == 303
    client.session.headers["X-CSRF-Token"] = await world.csrf(client)
    taken = await client.post(f"/api/interviews/{interview_id}/take")
    assert taken.status == 200, await taken.text()
    return client


async def consented_applicant(world: World, token: str, dob: str = "1980-05-17") -> Seated:
    """The applicant of the link ``token``, checked in and consented, with an open socket
    (their page once they clicked "I agree, continue", before it asks for a place)."""
    applicant = await world.client()
    assert (await world.confirm_dob(applicant, token, dob)).status == 303
    applicant.session.headers["X-CSRF-Token"] = await world.csrf(applicant)
    consent = await applicant.post(
        "/api/applicant/consent", json={"text_version": CONSENT_VERSION, "language": "en"}
    )
    assert consent.status == 201, await consent.text()
    return await open_socket(world, applicant)


async def waiting_applicant(world: World, token: str, dob: str = "1980-05-17") -> Seated:
    """The applicant of the link ``token``, consented and in the waiting room."""
    seated = await consented_applicant(world, token, dob)
    interview_id = (await (await seated.client.get("/api/applicant/interview")).json())["id"]
    await seated.ws.send_str(m.encode(m.Ready(interview_id=interview_id)))
    return seated


async def seated_interview(world: World) -> tuple[dict[Seat, Seated], str]:
    """An interview of NX-0001 whose applicant waits in the waiting room and whose two
    officers signed in and took it, which starts its call: each has an open socket, the
    applicant's told to join (`m.Paired`), none joined yet."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    seated = {Seat.APPLICANT: await waiting_applicant(world, token)}
    await seated[Seat.APPLICANT].expect(m.Waiting)
    for agency in Agency:
        client = await officer_who_took(world, interview_id, agency)
        seated[Seat.of(agency)] = await open_socket(world, client)
    await seated[Seat.APPLICANT].expect(m.Paired)
    return seated, interview_id


async def taken_interview(world: World) -> tuple[str, Client, Client]:
    """An interview of NX-0001 taken by a CBSA and a CBP officer, whose clients send their
    CSRF token with every request."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, _ = await world.invite("NX-0001")
    cbsa = await officer_who_took(world, interview_id, Agency.CBSA)
    cbp = await officer_who_took(world, interview_id, Agency.CBP)
    return interview_id, cbsa, cbp


@dataclass
class InCall:
    """An interview whose call is on, with the applicant in it."""

    interview_id: str
    seated: dict[Seat, Seated]

    @property
    def cbsa(self) -> Client:
        return self.seated[Seat.CBSA].client

    @property
    def cbp(self) -> Client:
        return self.seated[Seat.CBP].client

    async def end(self, by: Seat = Seat.CBSA) -> m.Ended:
        """The officer at ``by`` joins the call's room and ends it, as the page's "End
        interview" button does."""
        officer = self.seated[by]
        await join(officer, self.interview_id)
        await officer.ws.send_str(m.encode(m.End()))
        ended = await officer.expect(m.Ended)
        assert isinstance(ended, m.Ended), ended
        return ended


@asynccontextmanager
async def applicant_in_call(world: World) -> AsyncIterator[InCall]:
    """`seated_interview` once the applicant joined its call with media (their join
    stored): ID stills may be captured and decisions made. The officers' clients send
    their CSRF token with every request; their sockets are open, not joined."""
    seated, interview_id = await seated_interview(world)
    applicant = SyntheticParticipant(Seat.APPLICANT)
    try:
        await join_and_call(seated[Seat.APPLICANT], interview_id, applicant)
        await world.server.app[LIVES].drain()
        yield InCall(interview_id, seated)
    finally:
        await applicant.close()
