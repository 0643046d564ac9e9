"""A room as the control plane sees it (`RoomHandle`): on which worker, who is seated,
and the requests that reach it there."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from common.names import ParticipantId, RoomId, Seat
from media import protocol as p
from media.interview import InterviewEvent

from .worker_links import WorkerLink


def ignore(value: float) -> None:
    pass


class RoomHandle:
    """A room as the control plane sees it: on which worker, who is seated, and the
    requests that reach it there."""

    def __init__(
        self, room_id: RoomId, link: WorkerLink, on_joined: Callable[[float], None] = ignore
    ) -> None:
        """``on_joined``: seconds from an offer to its answer, for each seat joined."""
        self.id = room_id
        self.link = link
        self._on_joined = on_joined
        self.closed = False
        self._present: set[Seat] = set()
        self._participants: dict[Seat, ParticipantId] = {}

    @property
    def present(self) -> list[Seat]:
        """The seats whose participant is connected (not dropped)."""
        return [seat for seat in Seat if seat in self._present]

    def participant(self, seat: Seat) -> ParticipantId | None:
        """The connection that holds ``seat`` (connected or within its grace)."""
        return self._participants.get(seat)

    async def join(
        self, seat: Seat, sdp: str, info: dict[str, Any], relays: Sequence[p.Relay] = ()
    ) -> tuple[str, ParticipantId]:
        """Seat a participant; the SDP answer and the new connection's id. ``relays``: the
        TURN servers the worker's end of the connection may use (`turn.media_relays`)."""
        given = list(relays) or msgspec.UNSET
        started = time.monotonic()
        answered = await self.link.ask(
            lambda n: p.Offer(request=n, room=self.id, seat=seat, sdp=sdp, info=info, relays=given),
            p.Answered,
        )
        self._on_joined(time.monotonic() - started)
        participant = ParticipantId(answered.participant)
        self._participants[seat] = participant
        return answered.sdp, participant

    async def add_candidate(
        self, seat: Seat, candidate: str, sdp_mid: str | None, index: int | None
    ) -> None:
        await self.link.ask(
            lambda n: p.Candidate(
                request=n,
                room=self.id,
                seat=seat,
                candidate=candidate,
                sdp_mid=sdp_mid,
                sdp_mline_index=index,
            ),
            p.Done,
        )

    async def leave(self, seat: Seat) -> None:
        if not self.closed:
            await self.link.ask(lambda n: p.Leave(request=n, room=self.id, seat=seat), p.Done)

    def socket_closed(self, seat: Seat, participant: ParticipantId) -> None:
        """The page that seated ``participant`` closed its socket without leaving."""
        if not self.closed and self.link.alive:
            self.link.tell(p.SocketClosed(room=self.id, seat=seat, participant=participant))

    def seen(self, event: InterviewEvent) -> None:
        if event.seat is None:
            if event.kind == "end":
                self.closed = True
                self._present.clear()
                self._participants.clear()
            return
        if event.kind in ("join", "rejoin"):
            self._present.add(event.seat)
        elif event.kind == "drop":
            self._present.discard(event.seat)
        elif event.kind in ("leave", "left"):
            self._present.discard(event.seat)
            self._participants.pop(event.seat, None)
