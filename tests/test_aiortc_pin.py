"""The relay builds on aiortc internals, so the version is pinned and these tests fail
loudly when an upgrade changes what `media/forwarding.py` relies on."""

from __future__ import annotations

import asyncio
import inspect
import time
from importlib.metadata import version

from aioice.ice import Connection, StunProtocol
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    clock,
    rtcrtpreceiver,
    rtcrtpsender,
    rtp,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RateCounter, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx

from media import peer_connections
from media.direct_receive import NTP_UNIX_OFFSET_MS
from media.direct_receive import RECEIVER_FIELDS as DIRECT_RECEIVER_FIELDS
from media.direct_receive import TRANSPORT_FIELDS as DIRECT_TRANSPORT_FIELDS
from media.slot_sender import SENDER_REPORT_FIELDS, TRANSPORT_FIELDS, SentPacket

PINNED = "1.16.0"


def test_aiortc_is_the_pinned_version() -> None:
    assert version("aiortc") == PINNED, (
        "aiortc changed: re-check media/forwarding.py, receivers.py, direct_receive.py "
        "and slot_sender.py "
        "against its new internals (the receiver's NACK generator, decoder queue, jitter "
        "buffer and bitrate estimator, _send_rtcp_pli; the sender's history, sender-report "
        "fields, _send_keyframe, _stream_id; RTCDtlsTransport._send_rtp) before moving the pin"
    )


def test_the_receiver_hands_complete_frames_to_its_decoder_queue() -> None:
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in source
    worker = list(inspect.signature(rtcrtpreceiver.decoder_worker).parameters)
    assert worker == ["loop", "input_q", "output_q", "decode_error"]
    assert "input_q.get()" in inspect.getsource(rtcrtpreceiver.decoder_worker)
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == [
        "self",
        "media_ssrc",
    ]


def test_the_receiver_assembles_frames_and_counts_bitrate_as_the_relay_expects() -> None:
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in source
    assert "if self.__remote_bitrate_estimator is not None:" in source
    assert "packet._data = depayload(codec, packet.payload)" in source
    assert "self.incoming_bitrate = RateCounter(1000, 8000)" in inspect.getsource(
        RemoteBitrateEstimator.__init__
    )
    assert {"add", "rate", "reset", "_erase_old"} <= set(vars(RateCounter))


def test_the_sender_packs_whatever_is_not_a_decoded_frame() -> None:
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "if self.__encoder is None:" in source
    assert "self.__encoder.pack(data)" in source
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert callable(rtcrtpsender.Encoder.pack)  # type: ignore[attr-defined]
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    assert "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE] = (" in run_rtp
    assert "self.__rtp_history.get(" in inspect.getsource(RTCRtpSender._retransmit)


async def test_the_attributes_the_relay_replaces_exist() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        assert hasattr(transceiver.receiver, "_RTCRtpReceiver__decoder_queue")
        jitter_buffer = getattr(transceiver.receiver, "_RTCRtpReceiver__jitter_buffer")  # noqa: B009
        assert isinstance(jitter_buffer, JitterBuffer)
        estimator = getattr(transceiver.receiver, "_RTCRtpReceiver__remote_bitrate_estimator")  # noqa: B009
        assert isinstance(estimator, RemoteBitrateEstimator)
        assert hasattr(transceiver.sender, "_RTCRtpSender__encoder")
        history = getattr(transceiver.sender, "_RTCRtpSender__rtp_history")  # noqa: B009
        assert type(history) is dict
        assert hasattr(transceiver.sender, "_stream_id")
        for name in SENDER_REPORT_FIELDS:
            assert isinstance(getattr(transceiver.sender, name), int)
        nacks = getattr(transceiver.receiver, "_RTCRtpReceiver__nack_generator")  # noqa: B009
        assert isinstance(nacks, NackGenerator)
        for name in TRANSPORT_FIELDS:
            assert hasattr(transceiver.sender.transport, name)
        assert isinstance(transceiver.sender.transport.transport._connection._nominated, dict)
    finally:
        await pc.close()
        await asyncio.sleep(0)


async def test_the_tests_can_reach_the_udp_transports_a_connection_sends_from() -> None:
    """`tests/test_interview_drops.py` cuts a client's connection without a goodbye by
    giving the ICE connection's protocols (aioice ``Connection._protocols``) a transport
    that sends nothing."""
    pc = RTCPeerConnection()
    try:
        ice = pc.addTransceiver("audio").sender.transport.transport
        assert isinstance(ice._connection._protocols, list)
        assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    finally:
        await pc.close()


def test_descriptions_start_the_setup_task_that_negotiate_watches() -> None:
    """`media/peer_connections.py` finds aiortc's unawaited setup task by name."""
    for step in (RTCPeerConnection.setLocalDescription, RTCPeerConnection.setRemoteDescription):
        assert "asyncio.ensure_future(self.__connect())" in inspect.getsource(step)
    setup = getattr(RTCPeerConnection, "_RTCPeerConnection__connect")  # noqa: B009
    assert setup.__qualname__ == peer_connections.SETUP_TASK


def test_the_receiver_hands_each_unwrapped_packet_to_its_nack_generator_first() -> None:
    """`receivers.tap_packets` forwards from the NACK generator's ``add``: it must see
    every packet of a known codec, after RTX unwrapping and before depacketizing, on
    audio receivers (which have none) too."""
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    unwrap = source.index("packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)")
    tap = source.index(
        "if self.__nack_generator is not None and self.__nack_generator.add(packet):"
    )
    depayload = source.index("packet._data = depayload(codec, packet.payload)")
    assert source.index("if codec is None:") < unwrap < tap < depayload
    assert "sorted(self.__nack_generator.missing)" in source
    init = inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__nack_generator = None" in init
    assert "self.__nack_generator = NackGenerator()" in init
    assert {"add", "missing"} <= set(vars(NackGenerator)) | set(vars(NackGenerator()))


def test_a_sender_is_started_only_on_a_connected_transport() -> None:
    """`forwarding.prepare_sender` learns the negotiated stream from ``sender.send`` and
    starts forwarding then, taking the transport to be connected."""
    connect = inspect.getsource(getattr(RTCPeerConnection, "_RTCPeerConnection__connect"))  # noqa: B009
    assert 'if dtlsTransport.state == "connected":' in connect
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in connect
    assert connect.index('if dtlsTransport.state == "connected":') < connect.index(
        "transceiver.sender.send("
    )


def test_sender_reports_read_the_fields_the_slot_sender_updates() -> None:
    source = inspect.getsource(RTCRtpSender._run_rtcp)
    for line in (
        "ntp_timestamp=self.__ntp_timestamp,",
        "rtp_timestamp=self.__rtp_timestamp,",
        "packet_count=self.__packet_count & 0xFFFFFFFF,",
        "octet_count=self.__octet_count & 0xFFFFFFFF,",
    ):
        assert line in source
    assert [name.rsplit("__", 1)[1] for name in SENDER_REPORT_FIELDS] == [
        "ntp_timestamp",
        "rtp_timestamp",
        "octet_count",
        "packet_count",
    ]


def test_a_retransmission_is_built_from_a_sent_packet_as_from_aiortcs_own() -> None:
    source = inspect.getsource(RTCRtpSender._retransmit)
    assert "packet = self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" in source
    assert "if packet and packet.sequence_number == sequence_number:" in source
    assert "packet = wrap_rtx(" in source
    assert "packet_bytes = packet.serialize(self.__rtp_header_extensions_map)" in source
    sent = SentPacket(4321, 1, 90000, b"payload", RtpPacket().extensions, b"wire bytes")
    rtx = wrap_rtx(sent, payload_type=98, sequence_number=7, ssrc=55)  # type: ignore[arg-type]
    parsed = RtpPacket.parse(rtx.serialize(HeaderExtensionsMap()))
    assert (parsed.payload, parsed.timestamp, parsed.marker) == (b"\x10\xe1payload", 90000, 1)
    assert sent.serialize(None) == b"wire bytes"


def test_the_slot_sender_sends_rtp_as_the_dtls_transport_does() -> None:
    """`slot_sender.SlotSender._transmit` does what ``RTCDtlsTransport._send_rtp`` does
    for an RTP packet, without its coroutines: it must still be this."""
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    for line in (
        "if self._state != State.CONNECTED:",
        "data = self._tx_srtp.protect(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
    ):
        assert line in send_rtp
    assert "self._send = self._connection.send" in inspect.getsource(RTCIceTransport.__init__)
    assert "await self.sendto(data, 1)" in inspect.getsource(Connection.send)
    sendto = inspect.getsource(Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)


def test_the_direct_receive_does_what_the_receiver_does_with_a_packet() -> None:
    """`direct_receive.DirectReceive.handle` replicates ``_handle_rtp_packet`` on the
    receiver's own objects, skipping only depayloading and assembly when nothing
    records: each step it keeps must still be there, in this order."""
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    steps = [
        "if not self._enabled:",
        "abs_send_time=packet.extensions.abs_send_time,",
        "arrival_time_ms=arrival_time_ms,",
        "payload_size=len(packet.payload) + packet.padding_size,",
        "if self.__rtcp_ssrc is not None and remb is not None:",
        "fci=pack_remb_fci(*remb),",
        "await self._send_rtcp(rtcp_packet)",
        "self.__active_ssrc[packet.ssrc] = clock.current_datetime()",
        "codec = self.__codecs.get(packet.payload_type)",
        "self.__remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "if is_rtx(codec):",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        'apt = codec.parameters.get("apt")',
        "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet):",
        "packet.ssrc, sorted(self.__nack_generator.missing)",
        "packet._data = depayload(codec, packet.payload)",
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
        "if self.__decoder_error.is_set():",
        "await self._send_rtcp_pli(packet.ssrc)",
        "if encoded_frame is not None and self.__decoder_thread:",
        "encoded_frame.timestamp = self.__timestamp_mapper.map(",
        "self.__decoder_queue.put((codec, encoded_frame))",
    ]
    positions = [source.index(step) for step in steps]
    assert positions == sorted(positions)
    # the REMB estimator's arrival times count milliseconds from 1900, as ours do
    assert abs(clock.current_ms() - (int(time.time() * 1000) + NTP_UNIX_OFFSET_MS)) < 1000
    # aiortc lists a source for PLIs for 10 s after its last packet: a refresh each
    # second keeps it listed
    assert "timedelta(seconds=10)" in inspect.getsource(RTCRtpReceiver.getSynchronizationSources)
    # what the RTCP loop's receiver reports read
    rtcp = inspect.getsource(RTCRtpReceiver._run_rtcp)
    assert "for ssrc, stream in self.__remote_streams.items():" in rtcp
    for name in ("_send_rtcp", "_send_rtcp_nack", "_send_rtcp_pli"):
        assert inspect.iscoroutinefunction(getattr(RTCRtpReceiver, name))


def test_the_direct_receive_takes_srtp_as_the_dtls_transport_does() -> None:
    """`direct_receive.ConnectionIntake` takes a datagram from aioice's protocol before
    its STUN parse, and does what the DTLS transport's reading task does with SRTP."""
    received = inspect.getsource(StunProtocol.datagram_received)
    assert "message = stun.parse_message(data)" in received
    assert "self.receiver.data_received(data, self.local_candidate.component)" in received
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(
        Connection.data_received
    )
    assert "result = await self._queue.get()" in inspect.getsource(Connection.recvfrom)
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    for line in (
        "self.__rx_bytes += len(data)",
        "self.__rx_packets += 1",
        "elif first_byte > 127 and first_byte < 192 and self._rx_srtp:",
        "if is_rtcp(data):",
        "data = self._rx_srtp.unprotect(data)",
        "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)",
        "except pylibsrtp.Error as exc:",
    ):
        assert line in recv_next
    assert "return len(msg) >= 2 and msg[1] >= 192 and msg[1] <= 208" in inspect.getsource(
        rtp.is_rtcp
    )
    handle = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "receiver = self._rtp_router.route_rtp(packet)" in handle
    route = inspect.getsource(RtpRouter.route_rtp)
    assert "ssrc_receiver = self.ssrc_table.get(packet.ssrc)" in route
    assert "self.ssrc_table[packet.ssrc] = pt_receiver" in route
    assert "self.__discard(self.ssrc_table, receiver)" in inspect.getsource(
        RtpRouter.unregister_receiver
    )


async def test_the_fields_the_direct_receive_reads_exist() -> None:
    pc = RTCPeerConnection()
    try:
        for kind in ("audio", "video"):
            receiver = pc.addTransceiver(kind).receiver
            for name in DIRECT_RECEIVER_FIELDS:
                assert hasattr(receiver, name), name
            for name in DIRECT_TRANSPORT_FIELDS:
                assert hasattr(receiver.transport, name), name
            assert isinstance(receiver.transport._rtp_router.ssrc_table, dict)
            connection = receiver.transport.transport._connection
            assert isinstance(connection._protocols, list)
            assert isinstance(connection._queue, asyncio.Queue)
    finally:
        await pc.close()
        await asyncio.sleep(0)


async def test_the_fields_the_workers_traffic_report_reads_exist() -> None:
    # media/worker.py: round-trip time from the sender's RTCP, NACKs by wrapping the
    # sender's retransmission (a missing field would report nothing, not fail)
    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver("video").sender
        assert hasattr(sender, "_RTCRtpSender__rtt")
        assert asyncio.iscoroutinefunction(sender._retransmit)
    finally:
        await pc.close()
        await asyncio.sleep(0)
