"""The media relay (issue #3) builds on aiortc internals, so the version is pinned and this
test fails loudly when an upgrade changes what the relay relies on."""

from __future__ import annotations

import inspect
from importlib.metadata import version

from aiortc import rtcrtpreceiver, rtcrtpsender


def test_aiortc_is_the_pinned_version() -> None:
    assert version("aiortc") == "1.16.0", (
        "aiortc changed: re-check the encoded-frame relay against its new internals "
        "(decoder_worker, RTCRtpSender._next_encoded_frame, Encoder.pack) before moving the pin"
    )


def test_the_receiver_decoder_worker_has_the_signature_the_relay_replaces() -> None:
    parameters = list(inspect.signature(rtcrtpreceiver.decoder_worker).parameters)
    assert parameters == ["loop", "input_q", "output_q", "decode_error"]


def test_the_sender_packetizes_encoded_frames_itself() -> None:
    parameters = list(inspect.signature(rtcrtpsender.RTCRtpSender._next_encoded_frame).parameters)
    assert parameters == ["self", "codec"]
    assert callable(rtcrtpsender.Encoder.pack)  # type: ignore[attr-defined]
