"""Browsers in a call for tests: a signed-in client with its signalling socket, and the
join-and-offer dance a synthetic participant goes through."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import ClientWebSocketResponse

from server.types import Agency
from signalling import messages as m
from signalling.types import Seat

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


async def join_and_call(seated: Seated, interview_id: str, person: SyntheticParticipant) -> None:
    joined = await seated.ask(m.Join(interview_id=interview_id))
    assert isinstance(joined, m.Joined), joined

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


async def seated_interview(world: World) -> tuple[dict[Seat, Seated], str]:
    """An interview of NX-0001 whose applicant confirmed the date of birth and whose two
    officers signed in and took it, each with an open socket (not yet joined)."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    applicant = await world.client()
    await world.confirm_dob(applicant, token, "1980-05-17")
    seated = {Seat.APPLICANT: await open_socket(world, applicant)}
    for agency in Agency:
        client = await officer_who_took(world, interview_id, agency)
        seated[Seat.of(agency)] = await open_socket(world, client)
    return seated, interview_id


async def taken_interview(world: World) -> tuple[str, Client, Client]:
    """An interview of NX-0001 taken by a CBSA and a CBP officer, whose clients send their
    CSRF token with every request."""
    await add_applications(world.store, application("NX-0001"))
    interview_id, _ = await world.invite("NX-0001")
    cbsa = await officer_who_took(world, interview_id, Agency.CBSA)
    cbp = await officer_who_took(world, interview_id, Agency.CBP)
    return interview_id, cbsa, cbp
