"""One participant: their RTCPeerConnection with the server, what they publish and the
slots that carry the other seats' media to them.

The client's offer holds one audio and one video section it sends (``sendonly`` or
``sendrecv``) and, per kind, one ``recvonly`` section for each other seat. The server
answers with the seat's name as the stream id of each slot, so the browser knows whose
media a slot carries without renegotiating when people come and go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from common.names import Kind, ParticipantId, Seat
from media.types import NullSink, RecordingSink

from .address_policy import ANY_UNICAST, AddressPolicy
from .candidates import offer_within_policy, remote_candidate
from .errors import SdpError, TooManyCandidates
from .forwarding import EncodedFrameTap, ForwardedTrack, Publication, prepare_sender, send_pli
from .peer_connections import negotiate
from .receivers import idle_receiver, tap_packets

MAX_SDP_BYTES = 32 * 1024
# A browser trickles a few candidates per network interface (host, server-reflexive,
# relayed, each over IPv4 and IPv6): a connection that names more is not a browser.
MAX_CANDIDATES = 64
PUBLISHING = ("sendonly", "sendrecv")
CODECS = {Kind.AUDIO: ("audio/opus",), Kind.VIDEO: ("video/VP8", "video/rtx")}


@dataclass(frozen=True)
class OfferSection:
    kind: Kind
    publishes: bool


def read_offer(sdp: str, other_seats: int) -> list[OfferSection]:
    """The offer's media sections, or `SdpError` saying why it cannot be accepted."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise SdpError(f"the offer is larger than {MAX_SDP_BYTES} bytes")
    if not sdp.startswith("v=0"):
        raise SdpError("the offer is not valid SDP: it must start with v=0")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the text provokes
        raise SdpError(f"the offer is not valid SDP: {exc}") from None
    sections = []
    for media in parsed.media:
        if media.kind not in (Kind.AUDIO, Kind.VIDEO):
            raise SdpError(f"unexpected {media.kind!r} section: only audio and video are used")
        if media.direction not in (*PUBLISHING, "recvonly"):
            raise SdpError(f"a {media.kind} section has direction {media.direction}")
        if not media.ice or not media.ice.usernameFragment or not media.dtls:
            raise SdpError(f"the {media.kind} section lacks ICE or DTLS parameters")
        sections.append(OfferSection(Kind(media.kind), media.direction in PUBLISHING))
    for kind in Kind:
        published = sum(1 for s in sections if s.kind is kind and s.publishes)
        slots = sum(1 for s in sections if s.kind is kind and not s.publishes)
        if published != 1:
            raise SdpError(f"the offer must send exactly one {kind} track, not {published}")
        if slots != other_seats:
            raise SdpError(
                f"the offer must receive {other_seats} {kind} tracks (one per other seat), "
                f"not {slots}"
            )
    return sections


class Participant:
    def __init__(
        self,
        participant_id: ParticipantId,
        seat: Seat,
        sink: RecordingSink,
        on_failed: Callable[[Participant], None],
        ice_servers: list[RTCIceServer] | None = None,
        address_policy: AddressPolicy = ANY_UNICAST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``address_policy``: where the connection may send checks; the default, any
        unicast address, suits peers on this machine or network (tests, benchmarks).
        ``clock`` times the media's arrival (`silence`)."""
        self.id = participant_id
        self.seat = seat
        self._sink = sink
        self._on_failed = on_failed
        self._clock = clock
        self.configuration = RTCConfiguration(
            iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
        )
        self.pc = RTCPeerConnection(self.configuration)
        self.publications: dict[Kind, Publication] = {}
        self.slots: dict[tuple[Seat, Kind], ForwardedTrack] = {}
        self.taps: list[EncodedFrameTap] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._address_policy = address_policy
        self._candidates_received = 0
        self.pc.on("connectionstatechange", self._connection_state_changed)

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    @property
    def frames_received(self) -> int:
        """Media received so far on all the published tracks, counted in packets: it grows
        while media flows."""
        return sum(publication.packets for publication in self.publications.values())

    def silence(self) -> float | None:
        """Seconds since a packet last came on any published track; None before the first
        (the connection may still be being set up)."""
        times = [p.last_packet_at for p in self.publications.values()]
        last = max((t for t in times if t is not None), default=None)
        return None if last is None else self._clock() - last

    async def accept_offer(self, sdp: str, other_seats: list[Seat]) -> str:
        """Set up publications and slots from the client's offer and return the answer."""
        sections = read_offer(sdp, len(other_seats))
        sdp = offer_within_policy(sdp, self._address_policy)
        seats_left = {kind: list(other_seats) for kind in Kind}
        for section in sections:
            direction = "recvonly" if section.publishes else "sendonly"
            transceiver = self.pc.addTransceiver(section.kind.value, direction=direction)
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities(section.kind.value).codecs
                    if c.mimeType in CODECS[section.kind]
                ]
            )
            if section.publishes:
                self._publish(section.kind, transceiver.receiver)
            else:
                seat = seats_left[section.kind].pop(0)
                track = ForwardedTrack(seat, section.kind)
                prepare_sender(transceiver.sender, section.kind, track, stream_id=seat.value)
                idle_receiver(transceiver.receiver, section.kind)
                self.slots[(seat, section.kind)] = track
        try:
            offer = RTCSessionDescription(sdp, "offer")
            await negotiate(self.pc, self.pc.setRemoteDescription(offer))
            await negotiate(self.pc, self.pc.setLocalDescription(await self.pc.createAnswer()))
        except Exception as exc:  # aiortc raises ValueError, AssertionError, OperationError…
            raise SdpError(f"the offer cannot be answered: {exc}") from None
        return str(self.pc.localDescription.sdp)

    def _publish(self, kind: Kind, receiver: RTCRtpReceiver) -> None:
        publication = Publication(
            self.seat,
            kind,
            self._sink,
            request_keyframe=lambda: self._spawn(send_pli(receiver)),
            clock=self._clock,
        )
        tap_packets(receiver, publication.deliver)
        # Whole frames are assembled only for a recorder: forwarding needs none.
        records = not isinstance(self._sink, NullSink)
        self.taps.append(
            EncodedFrameTap.install(receiver, kind, publication.record, assemble=records)
        )
        self.publications[kind] = publication

    async def add_candidate(self, candidate: str, sdp_mid: str | None, index: int | None) -> None:
        """A candidate trickled by the browser (with ``sdp_mid``, ``index`` or both); one
        the address policy refuses is dropped (see `candidates`)."""
        if self._candidates_received >= MAX_CANDIDATES:
            raise TooManyCandidates(
                "this connection has sent too many ICE candidates (at most {limit})",
                limit=MAX_CANDIDATES,
            )
        self._candidates_received += 1
        parsed = remote_candidate(candidate, self._address_policy)
        if parsed is None:
            return
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = index
        await self.pc.addIceCandidate(parsed)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection_state_changed(self) -> None:
        # "closed" here means the other side hung up without saying goodbye.
        if self.pc.connectionState in ("failed", "closed") and not self._closed:
            self._on_failed(self)

    async def close(self) -> None:
        """Release the connection and every forwarded track; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for publication in self.publications.values():
            publication.close()
        for track in self.slots.values():
            if track.source is not None:
                track.source.unsubscribe(track)
            track.stop()
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
