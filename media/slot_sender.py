"""Puts a slot's packets on the wire as its aiortc `RTCRtpSender` would, without the
sender's encode-and-packetize loop.

`SlotSender` builds each packet's header with one ``struct`` call (the slot's SSRC and
payload type, the spliced sequence number and timestamp, and the header extensions aiortc's
sender writes: abs-send-time for the browser's bandwidth estimate and the mid for BUNDLE,
under the ids negotiated with this subscriber), keeps the payload as the publisher sent it,
and sends the bytes as the connection's DTLS transport does, at once, with no task or
coroutine per packet.
It keeps what the sender itself keeps for its RTCP: its retransmission history, under the
outgoing sequence number, so the sender answers a subscriber's NACK (with RTX when
negotiated), and the packet and octet counts and the RTP/NTP timestamp pair of its sender
reports.

aiortc internals used (pinned; `tests/test_aiortc_pin.py` fails loudly if they change):
``RTCRtpSender._RTCRtpSender__rtp_history``, the sender-report fields
``_RTCRtpSender__ntp_timestamp``, ``__rtp_timestamp``, ``__octet_count`` and
``__packet_count``; what ``RTCDtlsTransport._send_rtp`` uses (``_state``, ``_tx_srtp``,
``__tx_bytes``, ``__tx_packets``, ``transport._connection``) and aioice's
``Connection._nominated`` pairs with their ``protocol.transport`` and ``remote_addr``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any, ClassVar

from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions
from pylibsrtp import Error as SrtpError

from common.names import Kind

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 (NTP's epoch) to 1970 (Unix's)
NTP_ONE_SECOND = 1 << 32
HALF_SEQUENCE_SPACE = 0x8000
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ONE_BYTE_HEADER_PROFILE = 0xBEDE  # RFC 8285 section 4.2
ICE_COMPONENT = 1  # RTP and RTCP share the first component (rtcp-mux)
HISTORY = "_RTCRtpSender__rtp_history"
SENDER_REPORT_FIELDS = (
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)


TRANSPORT_FIELDS = (
    "_state",
    "_tx_srtp",
    "_RTCDtlsTransport__tx_bytes",
    "_RTCDtlsTransport__tx_packets",
)


def ntp_now() -> int:
    """Now as a 64-bit NTP timestamp (aiortc's `clock.current_ntp_time`, cheaper)."""
    return int((time.time() + NTP_UNIX_OFFSET) * NTP_ONE_SECOND)


class SentPacket:
    """A sent packet as the sender's retransmission history holds it: what aiortc's
    ``_retransmit`` reads (and `aiortc.rtp.wrap_rtx` to wrap it in RTX)."""

    __slots__ = ("_data", "extensions", "marker", "payload", "sequence_number", "timestamp")
    csrc: ClassVar[list[int]] = []

    def __init__(
        self,
        sequence_number: int,
        marker: int,
        timestamp: int,
        payload: bytes,
        extensions: HeaderExtensions,
        data: bytes,
    ) -> None:
        self.sequence_number = sequence_number
        self.marker = marker
        self.timestamp = timestamp
        self.payload = payload
        self.extensions = extensions
        self._data = data

    def serialize(self, extensions_map: object) -> bytes:
        """The packet as it was sent (a retransmission without RTX)."""
        return self._data


class SlotSender:
    """Sends spliced packets as ``sender``'s stream once the connection has negotiated it."""

    def __init__(
        self, sender: RTCRtpSender, kind: Kind, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        """``on_ready``: called once the connection has negotiated the sender's stream and
        its DTLS transport is connected (aiortc starts a sender only then)."""
        for attribute in (HISTORY, *SENDER_REPORT_FIELDS):
            if not hasattr(sender, attribute):
                raise RuntimeError(f"aiortc changed: RTCRtpSender has no {attribute}")
        for attribute in TRANSPORT_FIELDS:
            if not hasattr(sender.transport, attribute):
                raise RuntimeError(f"aiortc changed: RTCDtlsTransport has no {attribute}")
        if not hasattr(sender.transport.transport, "_connection"):
            raise RuntimeError("aiortc changed: RTCIceTransport has no _connection")
        self._sender: Any = sender
        self._keeps_history = kind is Kind.VIDEO  # Opus is negotiated without NACK
        self._history: dict[int, Any] = getattr(sender, HISTORY)
        self._header: struct.Struct | None = None
        """None until the connection has negotiated the sender's parameters."""
        self._first_byte = 0x80
        self._payload_type = 0
        self._ssrc = sender._ssrc
        self._abs_send_time_word = 0
        self._extension_head: tuple[int, ...] = ()
        self._extension_tail = b""
        self._extensions = HeaderExtensions()
        self._transport: Any = None
        self._on_ready = on_ready
        self._next_sequence: int | None = None
        self.sent = 0
        self.failed = 0

    def configure(self, parameters: RTCRtpSendParameters) -> None:
        """Take the negotiated payload type and header extension ids (from the
        parameters the connection starts the sender with)."""
        payload_type = parameters.codecs[0].payloadType
        if payload_type is None:
            raise ValueError("the sender was started with no payload type")
        self._payload_type = payload_type
        ids = {extension.uri: extension.id for extension in parameters.headerExtensions}
        mid = parameters.muxId
        tail = b""
        if MID in ids and mid:
            element = bytes([ids[MID] << 4 | len(mid.encode()) - 1]) + mid.encode()
            tail = element + bytes(-len(element) % 4)
            self._extensions = HeaderExtensions(mid=mid)
        self._extension_tail = tail
        words = len(tail) // 4
        fields = "!BBHII"
        if ABS_SEND_TIME in ids:
            self._abs_send_time_word = ids[ABS_SEND_TIME] << 28 | 2 << 24
            words += 1
            fields += "HHI"
        elif words:
            fields += "HH"
        self._extension_head = (ONE_BYTE_HEADER_PROFILE, words) if words else ()
        self._first_byte = 0x90 if words else 0x80
        self._header = struct.Struct(fields)
        self._transport = self._sender.transport
        self._on_ready()

    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, ntp: int) -> None:
        """Send one packet now (nothing before the connection is negotiated)."""
        header = self._header
        if header is None:
            return
        second = marker << 7 | self._payload_type
        if self._abs_send_time_word:
            head = header.pack(
                self._first_byte,
                second,
                sequence,
                timestamp,
                self._ssrc,
                *self._extension_head,
                self._abs_send_time_word | (ntp >> 14) & 0xFFFFFF,
            )
        else:
            head = header.pack(
                self._first_byte, second, sequence, timestamp, self._ssrc, *self._extension_head
            )
        data = b"".join((head, self._extension_tail, payload))
        if self._keeps_history:
            self._history[sequence % RTP_HISTORY_SIZE] = SentPacket(
                sequence, marker, timestamp, payload, self._extensions, data
            )
        if not self._transmit(data):
            return
        sender = self._sender
        sender._RTCRtpSender__octet_count += len(payload)
        sender._RTCRtpSender__packet_count += 1
        newest = self._next_sequence
        if newest is None or (sequence - newest) & 0xFFFF < HALF_SEQUENCE_SPACE:
            # A sender report pairs the newest packet's timestamp with the time it left.
            self._next_sequence = (sequence + 1) & 0xFFFF
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = timestamp
        self.sent += 1

    def _transmit(self, data: bytes) -> bool:
        """What ``RTCDtlsTransport._send_rtp`` does for an RTP packet, with no coroutine:
        SRTP-protect it and ``sendto`` it on the ICE connection's nominated pair (the
        coroutines on aiortc's and aioice's way to it never wait), counting it in the
        transport's statistics."""
        dtls = self._transport
        pair = dtls.transport._connection._nominated.get(ICE_COMPONENT)
        if dtls._state is not State.CONNECTED or pair is None:
            self.failed += 1  # not connected (yet, or any more)
            return False
        try:
            data = dtls._tx_srtp.protect(data)
        except SrtpError:
            self.failed += 1  # a packet SRTP refuses to send twice
            return False
        pair.protocol.transport.sendto(data, pair.remote_addr)
        dtls._RTCDtlsTransport__tx_bytes += len(data)
        dtls._RTCDtlsTransport__tx_packets += 1
        return True
