"""Browsers in a call for tests: a signed-in client with its signalling socket, and the
join-and-offer dance a synthetic participant goes through."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import ClientWebSocketResponse

from signalling import messages as m
from signalling.types import Seat

from .fakes import Client, World
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
