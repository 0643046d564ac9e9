"""The relay builds on aiortc internals, so the version is pinned and these tests fail
loudly when an upgrade changes what `signalling/forwarding.py` relies on."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver, rtcrtpsender
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RateCounter, RemoteBitrateEstimator

from signalling import peer_connections

PINNED = "1.16.0"


def test_aiortc_is_the_pinned_version() -> None:
    assert version("aiortc") == PINNED, (
        "aiortc changed: re-check signalling/forwarding.py against its new internals "
        "(the receiver's decoder queue, jitter buffer and bitrate estimator, _send_rtcp_pli, "
        "the sender's encoder slot, _send_keyframe, _stream_id) before moving the pin"
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
    finally:
        await pc.close()
        await asyncio.sleep(0)


async def test_the_tests_can_reach_the_udp_transports_a_connection_sends_from() -> None:
    """`tests/test_interview_drops.py` cuts a client's connection without a goodbye by
    silencing the ICE connection's UDP transports (aioice ``Connection._protocols``)."""
    pc = RTCPeerConnection()
    try:
        ice = pc.addTransceiver("audio").sender.transport.transport
        assert isinstance(ice._connection._protocols, list)
        assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    finally:
        await pc.close()


def test_descriptions_start_the_setup_task_that_negotiate_watches() -> None:
    """`signalling/peer_connections.py` finds aiortc's unawaited setup task by name."""
    for step in (RTCPeerConnection.setLocalDescription, RTCPeerConnection.setRemoteDescription):
        assert "asyncio.ensure_future(self.__connect())" in inspect.getsource(step)
    setup = getattr(RTCPeerConnection, "_RTCPeerConnection__connect")  # noqa: B009
    assert setup.__qualname__ == peer_connections.SETUP_TASK
