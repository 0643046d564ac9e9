"""Output streams for media encoded elsewhere (the participants' browsers), muxed as is by
PyAV (the export's files; the recorder writes its own WebM, `webm`, with the same OpusHead).

Browsers' WebM parsers (Media Source Extensions) insist
on an Opus track's channel count and OpusHead, and on blocks in time order across tracks.
PyAV's mux-only streams carry neither parameter, and a libopus encoder's stream adds its
encoder delay to every audio timestamp (putting audio blocks out of order). So the Opus
stream is copied from a template: a header-only WebM written here by hand, two channels,
OpusHead with no pre-skip, no codec delay (and one silent packet, for the demuxer). The
codec context that comes with it is never sent a packet.
"""

from __future__ import annotations

import io
import struct
from functools import cache

import av
from av.container import OutputContainer
from av.stream import Stream

OPUS_RATE = 48_000


def vp8_stream(container: OutputContainer, width: int, height: int) -> Stream:
    return container.add_mux_stream("vp8", width=width, height=height)


def opus_stream(container: OutputContainer) -> Stream:
    with av.open(io.BytesIO(opus_template()), "r", format="matroska") as template:
        return container.add_stream_from_template(template.streams.audio[0], opaque=True)


def _element(element_id: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if size < 0x7F:
        return element_id + bytes([0x80 | size]) + payload
    return element_id + (0x4000 | size).to_bytes(2, "big") + payload


def opus_head() -> bytes:
    """RFC 7845 identification header: version 1, two channels, no pre-skip, 48 kHz."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, OPUS_RATE, 0, 0)


@cache
def opus_template() -> bytes:
    """A WebM with one stereo Opus track header and nothing else."""
    header = _element(
        b"\x1a\x45\xdf\xa3",  # EBML
        _element(b"\x42\x86", b"\x01")  # EBMLVersion
        + _element(b"\x42\xf7", b"\x01")  # EBMLReadVersion
        + _element(b"\x42\xf2", b"\x04")  # EBMLMaxIDLength
        + _element(b"\x42\xf3", b"\x08")  # EBMLMaxSizeLength
        + _element(b"\x42\x82", b"webm")  # DocType
        + _element(b"\x42\x87", b"\x04")  # DocTypeVersion
        + _element(b"\x42\x85", b"\x02"),  # DocTypeReadVersion
    )
    audio = _element(
        b"\xe1",  # Audio
        _element(b"\xb5", struct.pack(">d", OPUS_RATE))  # SamplingFrequency
        + _element(b"\x9f", b"\x02"),  # Channels
    )
    track = _element(
        b"\xae",  # TrackEntry
        _element(b"\xd7", b"\x01")  # TrackNumber
        + _element(b"\x73\xc5", b"\x01")  # TrackUID
        + _element(b"\x83", b"\x02")  # TrackType: audio
        + _element(b"\x86", b"A_OPUS")  # CodecID
        + _element(b"\x63\xa2", opus_head())  # CodecPrivate
        + audio,
    )
    info = _element(b"\x15\x49\xa9\x66", _element(b"\x2a\xd7\xb1", b"\x0f\x42\x40"))  # 1 ms
    tracks = _element(b"\x16\x54\xae\x6b", track)
    # one 20 ms silent Opus packet, so that the demuxer finds the stream complete
    cluster = _element(
        b"\x1f\x43\xb6\x75",  # Cluster
        _element(b"\xe7", b"\x00")  # Timecode
        + _element(b"\xa3", b"\x81\x00\x00\x80" + b"\xf8\xff\xfe"),  # SimpleBlock
    )
    unknown_size = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    return header + b"\x18\x53\x80\x67" + unknown_size + info + tracks + cluster
