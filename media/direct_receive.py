"""A publisher's RTP packets handled as they come off the socket, with no task step.

In aiortc a received datagram goes through aioice's STUN parser (which fails on RTP),
a queue, a wake-up of the DTLS transport's reading task, a full `RtpPacket.parse` (every
header extension), the routing, and the receiver's coroutine, which stamps each packet
with a `datetime`, depayloads it and feeds a jitter buffer, even when nothing records.
`DirectReceive` takes a publisher's packets straight from the ICE protocol's
``datagram_received`` and does what must still be done, in aiortc's order, on aiortc's
own objects (so its RTCP loop, statistics and NACK generator stay consistent, and a
packet that still takes aiortc's path meets the same state):

- SRTP unprotect, counted in the DTLS transport's statistics;
- the header fields the server reads, and of the extensions only abs-send-time;
- the REMB estimator's input (abs-send-time, arrival time, size) and the REMB it returns;
- the receiver's stream statistics, which its receiver reports are made of;
- RTX unwrapping, NACK generation (with the packet handed to the publication by the
  receiver's `receivers.PacketTap`), and the active sources aiortc lists for PLIs,
  refreshed once a second rather than per packet;
- depayloading and frame assembly only when a recorder listens (a jitter buffer other than
  `receivers.NoAssembly`), with aiortc's PLI on overflow and its timestamp mapping.

A packet not from a published track's SSRC (RTCP, DTLS, STUN, an SSRC the router has not
learnt yet) takes aiortc's path unchanged. RTCP and PLI/NACK/REMB sending stay aiortc's.

aiortc and aioice internals used (pinned; `tests/test_aiortc_pin.py` fails loudly if they
change): the receiver's ``__codecs``, ``__rtx_ssrc``, ``__remote_streams``,
``__active_ssrc``, ``__remote_bitrate_estimator``, ``__nack_generator``,
``__jitter_buffer``, ``__decoder_queue``, ``__decoder_thread``, ``__decoder_error``,
``__timestamp_mapper``, ``__rtcp_ssrc``, ``_send_rtcp``, ``_send_rtcp_nack``,
``_send_rtcp_pli``; the DTLS transport's ``_state``, ``_rx_srtp``, ``__rx_bytes``,
``__rx_packets`` and ``_rtp_router.ssrc_table``; aioice's ``Connection._protocols``,
``_queue``, ``data_received`` and ``StunProtocol.local_candidate``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.codecs import depayload, is_rtx
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    pack_remb_fci,
    unpack_header_extensions,
)
from pylibsrtp import Error as SrtpError

logger = logging.getLogger(__name__)

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ONE_BYTE_HEADER_PROFILE = 0xBEDE
NTP_UNIX_OFFSET_MS = 2208988800 * 1000  # aiortc's arrival times count from 1900
ACTIVE_REFRESH_MS = 1000  # aiortc lists a source active for 10 s after its last packet
RECEIVER = "_RTCRtpReceiver__"
RECEIVER_FIELDS = tuple(
    RECEIVER + name
    for name in (
        "codecs",
        "rtx_ssrc",
        "remote_streams",
        "active_ssrc",
        "remote_bitrate_estimator",
        "nack_generator",
        "jitter_buffer",
        "decoder_queue",
        "decoder_thread",
        "decoder_error",
        "timestamp_mapper",
        "rtcp_ssrc",
    )
)
TRANSPORT_FIELDS = (
    "_state",
    "_rx_srtp",
    "_RTCDtlsTransport__rx_bytes",
    "_RTCDtlsTransport__rx_packets",
    "_rtp_router",
)
HEAD = struct.Struct("!BBHII")


class ReceivedPacket:
    """What the server reads of a received RTP packet (as an `RtpPacket` spells it)."""

    __slots__ = (
        "_data",
        "marker",
        "padding_size",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        padding_size: int = 0,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.padding_size = padding_size
        self._data = b""


def parse_header(data: bytes, abs_send_time_id: int) -> tuple[ReceivedPacket, int | None] | None:
    """The packet and its abs-send-time (None without one, or if ``abs_send_time_id`` is
    0); None for a packet `RtpPacket.parse` would refuse."""
    if len(data) < 12:
        return None
    first, second, sequence, timestamp, ssrc = HEAD.unpack_from(data)
    if first >> 6 != 2:
        return None
    pos = 12 + 4 * (first & 0x0F)
    if len(data) < pos:
        return None
    abs_send_time = None
    if first & 0x10:
        if len(data) < pos + 4:
            return None
        profile = data[pos] << 8 | data[pos + 1]
        end = pos + 4 + 4 * (data[pos + 2] << 8 | data[pos + 3])
        if len(data) < end:
            return None
        if abs_send_time_id:
            abs_send_time = _abs_send_time(data, pos + 4, end, profile, abs_send_time_id)
        pos = end
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > len(data) - pos:
            return None
    payload = data[pos : len(data) - padding]
    packet = ReceivedPacket(second & 0x7F, second >> 7, sequence, timestamp, ssrc, payload, padding)
    return packet, abs_send_time


def _abs_send_time(data: bytes, pos: int, end: int, profile: int, wanted: int) -> int | None:
    if profile != ONE_BYTE_HEADER_PROFILE:
        for x_id, value in unpack_header_extensions(profile, data[pos:end]):
            if x_id == wanted and len(value) == 3:
                return int.from_bytes(value)
        return None
    while pos < end:  # RFC 8285 section 4.2
        byte = data[pos]
        if byte == 0:
            pos += 1  # padding
            continue
        x_id, length = byte >> 4, (byte & 0x0F) + 1
        if x_id == 15:
            return None
        if x_id == wanted and length == 3 and pos + 4 <= end:
            return data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3]
        pos += 1 + length
    return None


class DirectReceive:
    """One receiver's packets, handled as `RTCRtpReceiver._handle_rtp_packet` would but
    for the work nobody reads. Made by `install` once the receiver has started."""

    def __init__(self, receiver: RTCRtpReceiver, parameters: RTCRtpReceiveParameters) -> None:
        for field in RECEIVER_FIELDS:
            if not hasattr(receiver, field):
                raise RuntimeError(f"aiortc changed: RTCRtpReceiver has no {field}")
        fields: dict[str, Any] = {f[len(RECEIVER) :]: getattr(receiver, f) for f in RECEIVER_FIELDS}
        self._receiver: Any = receiver
        self._codecs = fields["codecs"]
        self._rtx_ssrc: dict[int, int] = fields["rtx_ssrc"]
        self._streams: dict[int, StreamStatistics] = fields["remote_streams"]
        self._active: dict[int, datetime.datetime] = fields["active_ssrc"]
        self._estimator = fields["remote_bitrate_estimator"]
        self._nacks = fields["nack_generator"]
        self._jitter_buffer = fields["jitter_buffer"]
        self._assembles = type(self._jitter_buffer).__name__ != "NoAssembly"
        self._rtx_types = {pt for pt, codec in self._codecs.items() if is_rtx(codec)}
        self._active_at: dict[int, int] = {}
        ids = {extension.uri: extension.id for extension in parameters.headerExtensions}
        self._abs_send_time_id = ids.get(ABS_SEND_TIME, 0) if self._estimator else 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.errors = 0

    def handle(self, data: bytes) -> None:
        """One plaintext RTP packet of this receiver's."""
        parsed = parse_header(data, self._abs_send_time_id)
        receiver = self._receiver
        if parsed is None or not receiver._enabled:
            return
        packet, abs_send_time = parsed
        self.handled += 1
        now_ms = int(time.time() * 1000) + NTP_UNIX_OFFSET_MS
        ssrc = packet.ssrc
        if abs_send_time is not None:
            remb = self._estimator.add(
                abs_send_time=abs_send_time,
                arrival_time_ms=now_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=ssrc,
            )
            rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None and remb is not None:
                feedback = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
                )
                self._spawn(receiver._send_rtcp(feedback))
        if now_ms - self._active_at.get(ssrc, 0) >= ACTIVE_REFRESH_MS:
            self._active_at[ssrc] = now_ms
            self._active[ssrc] = datetime.datetime.now(datetime.UTC)
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = self._streams.get(ssrc)
        if stream is None:
            stream = self._streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)  # type: ignore[arg-type]
        if packet.payload_type in self._rtx_types:
            original = self._rtx_ssrc.get(ssrc)
            apt = codec.parameters.get("apt")
            payload = packet.payload
            if original is None or len(payload) < 2 or apt not in self._codecs:
                return
            packet = ReceivedPacket(
                apt, packet.marker, payload[0] << 8 | payload[1], packet.timestamp, original,
                payload[2:],
            )  # fmt: skip
            codec = self._codecs[apt]
        nacks = self._nacks
        if nacks is not None and nacks.add(packet):
            self._spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        if self._assembles:
            self._assemble(packet, codec)

    def _assemble(self, packet: ReceivedPacket, codec: Any) -> None:
        """For a recorder: what aiortc does from depayloading on."""
        receiver = self._receiver
        try:
            packet._data = depayload(codec, packet.payload) if packet.payload else b""
        except ValueError:
            return
        pli, frame = self._jitter_buffer.add(packet)
        error = receiver._RTCRtpReceiver__decoder_error
        if error.is_set():
            error.clear()
            pli = True
        if pli:
            self._spawn(receiver._send_rtcp_pli(packet.ssrc))
        if frame is not None and receiver._RTCRtpReceiver__decoder_thread:
            frame.timestamp = receiver._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
            receiver._RTCRtpReceiver__decoder_queue.put((codec, frame))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for the feedback (RTCP) still being sent: the receiver stopping awaits it."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ConnectionIntake:
    """Sits in front of an ICE connection's protocols: an SRTP packet whose SSRC the
    DTLS transport routes to a receiver with a `DirectReceive` goes to it at once;
    anything else goes on as aioice would pass it."""

    def __init__(self, dtls: Any) -> None:
        for field in TRANSPORT_FIELDS:
            if not hasattr(dtls, field):
                raise RuntimeError(f"aiortc changed: RTCDtlsTransport has no {field}")
        self._dtls = dtls
        self._connection = dtls.transport._connection
        self._queue: asyncio.Queue[Any] = self._connection._queue
        self._routes: dict[Any, DirectReceive] = {}
        self._hooked: set[int] = set()
        self.errors = 0

    def add(self, receiver: RTCRtpReceiver, direct: DirectReceive) -> None:
        self._routes[receiver] = direct
        self._hook_protocols()

    def remove(self, receiver: RTCRtpReceiver) -> DirectReceive | None:
        return self._routes.pop(receiver, None)

    def _hook_protocols(self) -> None:
        for protocol in self._connection._protocols:
            if id(protocol) in self._hooked:
                continue
            self._hooked.add(id(protocol))
            protocol.datagram_received = self._receiver_for(protocol)

    def _receiver_for(self, protocol: Any) -> Callable[[bytes, tuple[Any, ...]], None]:
        stun = protocol.datagram_received
        component = protocol.local_candidate.component
        connection = self._connection

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            # RFC 7983: 128-191 is RTP or RTCP, never STUN: no STUN parse for it
            if 127 < data[0] < 192:
                if not self._take(data):
                    connection.data_received(data, component)
            else:
                stun(data, addr)

        return datagram_received

    def _take(self, data: bytes) -> bool:
        """Whether the packet was a published track's (handled, or dropped as aiortc
        would drop it)."""
        if len(data) < 12 or 191 < data[1] < 209:
            return False  # RTCP, or too short to route
        dtls = self._dtls
        receiver = dtls._rtp_router.ssrc_table.get(int.from_bytes(data[8:12]))
        direct = self._routes.get(receiver)
        if direct is None or dtls._state is not State.CONNECTED or dtls._rx_srtp is None:
            return False
        if not self._queue.empty():
            # Packets that came before this receiver's were routed here wait in aioice's
            # queue for the DTLS transport's task: taken directly, this one would
            # overtake them. The task empties the queue before it waits again.
            return False
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        try:
            plain = dtls._rx_srtp.unprotect(data)
        except SrtpError:
            return True  # a replay or a forgery: aiortc drops it too
        try:
            direct.handle(plain)
        except Exception:
            # Raised here it would reach the event loop for every packet: count it, say
            # it once, and drop the packet.
            self.errors += 1
            if self.errors == 1:
                logger.exception("handling a published packet failed")
        return True


def install(receiver: RTCRtpReceiver) -> None:
    """Once ``receiver`` starts receiving (its connection is up), take its packets
    directly; stop when it stops. Must run before the connection is established."""
    start, stop = receiver.receive, receiver.stop

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        await start(parameters)
        dtls: Any = receiver.transport
        intake = getattr(dtls, "_direct_intake", None)
        if intake is None:
            intake = ConnectionIntake(dtls)
            dtls._direct_intake = intake
        intake.add(receiver, DirectReceive(receiver, parameters))

    async def stopped() -> None:
        intake = getattr(receiver.transport, "_direct_intake", None)
        direct = intake.remove(receiver) if intake is not None else None
        await stop()
        if direct is not None:
            await direct.close()

    # setattr: methods, not typed as assignable
    setattr(receiver, "receive", receive)  # noqa: B010
    setattr(receiver, "stop", stopped)  # noqa: B010
