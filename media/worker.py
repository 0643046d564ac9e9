"""A media worker: the rooms the control plane placed on it, driven by the media-plane
protocol (`protocol`). The channel it speaks over is someone else's (a WebSocket in
`worker_process`, a pair of queues when the control plane keeps media in-process): here
there is only `receive` for what the control plane says and ``send`` for what we say.

Each request runs in a task of its own, so that a slow answer in one room never holds up
another; what concerns one seat arrives in order because the control plane waits for the
answer to an offer before it passes on that seat's candidates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import astuple, dataclass
from typing import Any

from aiortc import RTCIceServer

from common.errors import NexusError
from common.logs import interview_context
from common.names import ParticipantId, RoomId, Seat
from recordings.keys import Recipient

from . import protocol as p
from .address_policy import AddressPolicy, parse_networks
from .errors import RoomClosed
from .interview import InterviewEvent
from .participant import Participant
from .recording_feed import RecordingFeed
from .recording_outputs import recording
from .rooms import Rooms
from .types import NullSink, RecordingSink

log = logging.getLogger(__name__)

Send = Callable[[p.Message], None]


class MediaWorker:
    """The rooms on one worker, and what the control plane is told of them."""

    def __init__(self, welcome: p.Welcome, send: Send) -> None:
        self._send = send
        self._recipients = [Recipient.parse(text) for text in welcome.recipients]
        self._rooms = Rooms(
            on_event=self._room_event,
            sink_for=self._sink_for,
            grace_seconds=welcome.grace_seconds,
            ice_servers=[RTCIceServer(urls=url) for url in welcome.ice_servers],
            address_policy=AddressPolicy(parse_networks(",".join(welcome.peer_networks))),
            on_gone=self._room_gone,
        )
        self._placed: dict[RoomId, p.PlaceRoom] = {}
        self._feeds: dict[RoomId, RecordingFeed] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self.recording_failures = 0
        self._closed = False
        # Running totals: each connection's counters as last read, and what connections
        # that have gone had carried by then (`traffic`).
        self._seen: dict[int, _Counts] = {}
        self._gone = _Counts()
        self._nacks = 0
        self._recording_bytes = 0

    @property
    def rooms(self) -> int:
        return len(self._placed)

    @property
    def participants(self) -> int:
        return self._rooms.participants

    def receive(self, message: p.ToWorker) -> None:
        """Act on one message from the control plane (never blocks: requests run as tasks,
        whose log lines carry the room's interview id)."""
        if self._closed:
            return
        room = getattr(message, "room", None)
        if room is None:
            self._act(message)
            return
        with interview_context(room):
            self._act(message)

    def _act(self, message: p.ToWorker) -> None:
        match message:
            case p.PlaceRoom(room=room):
                self._placed[RoomId(room)] = message
            case p.Offer(request=request):
                self._spawn(request, self._offer(message))
            case p.Candidate(request=request):
                self._spawn(request, self._candidate(message))
            case p.Leave(request=request, room=room, seat=seat):
                self._spawn(request, self._leave(RoomId(room), seat))
            case p.SocketClosed(room=room, seat=seat, participant=participant):
                on = self._rooms.current(RoomId(room))
                if on is not None:
                    on.socket_closed(seat, ParticipantId(participant))
            case p.StopRecording(request=request, room=room):
                self._spawn(request, self._stop_recording(RoomId(room)))
            case p.EndRoom(request=request, room=room, detail=detail):
                self._spawn(request, self._end(RoomId(room), detail))
            case p.Drain():
                self.draining = True
            case _:
                log.warning("ignored a %s from the control plane", type(message).__name__)

    async def _offer(self, offer: p.Offer) -> p.Message:
        room_id = RoomId(offer.room)
        if room_id not in self._placed:
            raise RoomClosed("this call is not on; join the interview again")
        room = self._rooms.get(room_id)
        relays = [
            RTCIceServer(urls=relay.urls, username=relay.username, credential=relay.credential)
            for relay in (offer.relays or [])
        ]
        try:
            answer = await room.join(offer.seat, offer.sdp, offer.info, relays)
        except RuntimeError:  # the call ended while the offer was answered
            raise RoomClosed("this call has ended") from None
        participant = room.participant(offer.seat)
        if participant is None:
            raise RoomClosed("this call has ended")
        self._count_retransmissions(participant)
        return p.Answered(request=offer.request, sdp=answer, participant=participant.id)

    async def _candidate(self, candidate: p.Candidate) -> None:
        room = self._rooms.current(RoomId(candidate.room))
        participant = room.participant(candidate.seat) if room is not None else None
        if participant is None:
            raise RoomClosed("send the offer before candidates")
        await participant.add_candidate(
            candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
        )

    async def _leave(self, room_id: RoomId, seat: Seat) -> None:
        room = self._rooms.current(room_id)
        if room is not None:
            await room.leave(seat)

    async def _stop_recording(self, room_id: RoomId) -> None:
        feed = self._feeds.pop(room_id, None)
        if feed is not None:
            await feed.close()

    async def _end(self, room_id: RoomId, detail: dict[str, Any]) -> None:
        await self._rooms.end(room_id, **detail)
        await self._stop_recording(room_id)
        self._placed.pop(room_id, None)

    def _spawn(self, request: int, work: Coroutine[Any, Any, p.Message | None]) -> None:
        self._track(self._answering(request, work))

    async def _answering(self, request: int, work: Coroutine[Any, Any, p.Message | None]) -> None:
        """Run a request and answer it: with its own reply, `Done`, or `Refused` with an
        error a person can act on."""
        try:
            reply = await work
        except NexusError as exc:
            fields = {k: v for k, v in exc.fields.items() if _plain(v)}
            reply = p.Refused(
                request=request,
                code=exc.code,
                status=exc.status,
                message=exc.template,
                fields=fields,
            )
        except Exception:
            log.exception("a media request failed")
            reply = p.Refused(
                request=request,
                code="internal_error",
                status=500,
                message="something went wrong on our side",
            )
        self._send(reply if reply is not None else p.Done(request=request))

    def _room_event(self, room_id: RoomId, event: InterviewEvent) -> None:
        self._send(
            p.SeatEvent(
                room=room_id,
                kind=event.kind,
                seat=event.seat,
                at=event.at,
                detail=event.detail,
            )
        )

    def _room_gone(self, room_id: RoomId) -> None:
        """The room emptied and closed: its recording ends; a later join is placed anew."""
        if self._rooms.current(room_id) is not None:
            return  # joined again while it closed: the new call goes on, recorded as before
        feed = self._feeds.pop(room_id, None)
        if feed is not None:
            self._track(feed.close())
        self._placed.pop(room_id, None)
        self._send(p.RoomGone(room=room_id))

    def _sink_for(self, room_id: RoomId) -> RecordingSink:
        placed = self._placed.get(room_id)
        if placed is None or not placed.record or not self._recipients:
            return NullSink()
        feed = self._feeds.get(room_id)
        if feed is None:
            feed = self._feeds[room_id] = RecordingFeed(
                recording(room_id, self._send_sealed, self._recipients, placed.next_segment),
                on_failure=lambda seat, reason: self._recording_failed(room_id, seat, reason),
            )
        return feed

    def _send_sealed(self, message: p.Message) -> None:
        if isinstance(message, p.SegmentBytes):
            self._recording_bytes += len(message.data)
        self._send(message)

    def _count_retransmissions(self, participant: Participant) -> None:
        """Count the packets a subscriber asks again for (RTCP NACK), as aiortc's sender
        resends them: aiortc counts none of it."""
        for track in participant.slots.values():
            sender: Any = track.wire._sender if track.wire is not None else None
            resend = getattr(sender, "_retransmit", None)
            if resend is None or getattr(resend, "counted", False):
                continue

            async def counted(sequence: int, resend: Any = resend) -> None:
                self._nacks += 1
                await resend(sequence)

            counted.counted = True  # type: ignore[attr-defined]
            sender._retransmit = counted

    def traffic(self) -> p.Traffic:
        """The totals since this worker started, read from the counters forwarding keeps
        (a pass over the connections, no ``getStats``): cheap enough for every `Load`."""
        now: dict[int, _Counts] = {}
        rtts: list[float] = []
        for room_id in self._placed:
            room = self._rooms.current(room_id)
            if room is None:
                continue
            for seat in Seat:
                participant = room.participant(seat)
                if participant is not None:
                    now[id(participant)] = _counts_of(participant, rtts)
        for key, counts in self._seen.items():
            if key not in now:
                self._gone = self._gone + counts
        self._seen = now
        total = sum(now.values(), self._gone)
        return p.Traffic(
            packets_forwarded=total.forwarded,
            bytes_forwarded=total.forwarded_bytes,
            packets_received=total.received,
            packets_lost=total.lost,
            nacks=self._nacks,
            plis=total.plis,
            recording_bytes=self._recording_bytes,
            rtt_seconds=sum(rtts) / len(rtts) if rtts else None,
        )

    def _recording_failed(self, room_id: RoomId, seat: Seat | None, reason: str) -> None:
        self.recording_failures += 1
        self._send(p.RecordingFailed(room=room_id, seat=seat, reason=reason[:500]))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every room and await every task this worker started; safe twice."""
        if self._closed:
            return
        self._closed = True
        await self._rooms.close()
        for feed in list(self._feeds.values()):
            await feed.close()
        self._feeds.clear()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _plain(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


@dataclass(frozen=True)
class _Counts:
    forwarded: int = 0
    forwarded_bytes: int = 0
    received: int = 0
    lost: int = 0
    plis: int = 0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def _counts_of(participant: Participant, rtts: list[float]) -> _Counts:
    """One connection's counters (aiortc's private ones read as `slot_sender` does);
    its senders' round-trip times go into ``rtts``."""
    forwarded = forwarded_bytes = received = lost = 0
    for track in participant.slots.values():
        forwarded += track.forwarded
        sender: Any = track.wire._sender if track.wire is not None else None
        forwarded_bytes += getattr(sender, "_RTCRtpSender__octet_count", 0)
        rtt = getattr(sender, "_RTCRtpSender__rtt", None)
        if rtt is not None and rtt >= 0:
            rtts.append(rtt)
    for receiver in participant.pc.getReceivers():
        streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
        for stream in streams.values():
            received += stream.packets_received
            lost += max(stream.packets_lost, 0)
    plis = sum(publication.keyframe_requests for publication in participant.publications.values())
    return _Counts(forwarded, forwarded_bytes, received, lost, plis)
