"""What the recorder needs to know of an Opus packet without decoding it: how long it
lasts (RFC 6716 section 3.1, its TOC byte), and a silent packet to stand in for lost ones.

Browsers' WebM parsers (Media Source Extensions) take the time an Opus block lasts from
its packet, whatever BlockDuration says; a gap after it longer than twice that reads as
a discontinuity, and MSE then drops every video frame of the file until the next keyframe
and stops playback at the hole. Audio packets are lost on every real network, so the
recorder fills a gap in a seat's audio with `SILENCE` (a decoder plays silence where it
would have concealed the loss).
"""

from __future__ import annotations

# One 20 ms CELT frame, fullband, flagged silent: decoders of any channel count play it.
SILENCE = b"\xf8\xff\xfe"
SILENCE_MS = 20
# Each TOC configuration's frame length (tenths of a ms): SILK 0-11, hybrid 12-15, CELT 16-31.
_SILK = (100, 200, 400, 600)
_HYBRID = (100, 200)
_CELT = (25, 50, 100, 200)


def packet_ms(packet: bytes) -> float:
    """How long an Opus packet plays (ms); 0 for one too short to say."""
    if not packet:
        return 0.0
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        frame = _SILK[config % 4]
    elif config < 16:
        frame = _HYBRID[config % 2]
    else:
        frame = _CELT[config % 4]
    if code == 0:
        frames = 1
    elif code < 3:
        frames = 2
    elif len(packet) > 1:
        frames = packet[1] & 0x3F
    else:
        return 0.0
    return frame * frames / 10
