"""What the server changes in aiortc's `RTCRtpReceiver`, besides tapping its decoder queue
(`forwarding.EncodedFrameTap`): each packet handed over as it arrives (`tap_packets`),
frame assembly that hands frames on as soon as they are whole (`frame_assembly`) or none
at all when nothing records them, a REMB bitrate counter the garbage collector need not
walk (`bitrate`), and no bitrate estimator at all on receivers that never receive.

Run before the connection is established. These replace private attributes of the pinned
aiortc 1.16.0 (``_RTCRtpReceiver__nack_generator``, ``_RTCRtpReceiver__jitter_buffer``,
``_RTCRtpReceiver__remote_bitrate_estimator``); `tests/test_aiortc_pin.py` fails loudly
if they change.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from common.names import Kind

from . import direct_receive
from .bitrate import CompactRateCounter
from .frame_assembly import AudioPassThrough, VideoFrameAssembler

NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
WINDOW_MS, BITS_PER_BYTE_MS = 1000, 8000  # aiortc's RemoteBitrateEstimator counter


class PacketTap:
    """Stands in for the receiver's NACK generator, the one place where aiortc hands over
    each packet of a known codec after unwrapping RTX and before depacketizing it: the
    packet goes to ``on_packet``, then to the real generator (video) for NACKs."""

    def __init__(self, on_packet: Callable[[RtpPacket], None], nacks: NackGenerator | None):
        self._on_packet = on_packet
        self._nacks = nacks

    @property
    def missing(self) -> set[int]:
        return self._nacks.missing if self._nacks is not None else set()

    def add(self, packet: RtpPacket) -> bool:
        """Whether packets are missing (the receiver then sends a NACK)."""
        self._on_packet(packet)
        return self._nacks is not None and self._nacks.add(packet)


class NoAssembly(JitterBuffer):
    """A jitter buffer that keeps nothing and assembles no frame."""

    def __init__(self) -> None:
        super().__init__(capacity=1)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        return False, None


def tap_packets(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> PacketTap:
    """Hand every packet ``receiver`` gets to ``on_packet`` as it arrives, taken from the
    socket directly once the connection is up (`direct_receive`)."""
    if not hasattr(receiver, NACK_GENERATOR):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no NACK generator to tap")
    nacks = getattr(receiver, NACK_GENERATOR)
    if nacks is not None and not isinstance(nacks, NackGenerator):
        raise RuntimeError("aiortc changed: the receiver's NACK generator is not one")
    tap = PacketTap(on_packet, nacks)
    setattr(receiver, NACK_GENERATOR, tap)
    direct_receive.install(receiver)
    return tap


def prepare_receiver(receiver: RTCRtpReceiver, kind: Kind, assemble: bool = True) -> None:
    """A receiver whose packets are forwarded: prompt frame assembly (none without
    ``assemble``), compact counter."""
    if not isinstance(getattr(receiver, JITTER_BUFFER, None), JitterBuffer):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no jitter buffer to replace")
    assembler: JitterBuffer
    if not assemble:
        assembler = NoAssembly()
    elif kind is Kind.VIDEO:
        assembler = VideoFrameAssembler()
    else:
        assembler = AudioPassThrough()
    setattr(receiver, JITTER_BUFFER, assembler)
    estimator = _estimator(receiver, kind)
    if estimator is not None:
        estimator.incoming_bitrate = CompactRateCounter(WINDOW_MS, BITS_PER_BYTE_MS)


def idle_receiver(receiver: RTCRtpReceiver, kind: Kind) -> None:
    """The receiver of a send-only transceiver: it never gets a packet, so it needs no
    bitrate estimator (aiortc makes one for every video receiver)."""
    if _estimator(receiver, kind) is not None:
        setattr(receiver, BITRATE_ESTIMATOR, None)


def _estimator(receiver: RTCRtpReceiver, kind: Kind) -> RemoteBitrateEstimator | None:
    if not hasattr(receiver, BITRATE_ESTIMATOR):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no bitrate estimator")
    estimator = getattr(receiver, BITRATE_ESTIMATOR)
    if isinstance(estimator, RemoteBitrateEstimator):
        return estimator
    if kind is Kind.VIDEO:
        raise RuntimeError("aiortc changed: a video receiver has no RemoteBitrateEstimator")
    return None
