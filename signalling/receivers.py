"""What the server changes in aiortc's `RTCRtpReceiver`, besides tapping its decoder queue
(`forwarding.EncodedFrameTap`): frame assembly that hands frames on as soon as they are
whole (`frame_assembly`), a REMB bitrate counter the garbage collector need not walk
(`bitrate`), and no bitrate estimator at all on receivers that never receive.

Run before the connection is established. These replace private attributes of the pinned
aiortc 1.16.0 (``_RTCRtpReceiver__jitter_buffer``,
``_RTCRtpReceiver__remote_bitrate_estimator``); `tests/test_aiortc_pin.py` fails loudly
if they change.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RemoteBitrateEstimator

from .bitrate import CompactRateCounter
from .frame_assembly import AudioPassThrough, VideoFrameAssembler
from .types import Kind

JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
WINDOW_MS, BITS_PER_BYTE_MS = 1000, 8000  # aiortc's RemoteBitrateEstimator counter


def prepare_receiver(receiver: RTCRtpReceiver, kind: Kind) -> None:
    """A receiver whose frames are forwarded: prompt frame assembly, compact counter."""
    if not isinstance(getattr(receiver, JITTER_BUFFER, None), JitterBuffer):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no jitter buffer to replace")
    assembler = VideoFrameAssembler() if kind is Kind.VIDEO else AudioPassThrough()
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
