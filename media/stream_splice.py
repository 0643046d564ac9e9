"""One slot's outgoing RTP numbering, spliced from whichever publisher feeds it.

A subscriber's browser sees one stream per slot for the whole call, while the packets
behind it come from a publisher that may leave and come back with a new SSRC and new
random bases for its sequence numbers, timestamps and VP8 picture ids. `StreamSplice`
keeps an offset for each, chosen when a source starts, so that the slot's sequence
numbers run on by one, its timestamps by the time that passed, and its picture ids and
TL0PICIDX by one: a jump back would make the browser's jitter buffer and decoder take the
new packets for old ones. A video source starts only at the first packet of a keyframe,
which the browser can decode with no reference to what came before.
"""

from __future__ import annotations

from .vp8_descriptor import (
    NO_IDS,
    PICTURE_ID_7,
    PICTURE_ID_15,
    PictureIds,
    picture_ids,
    shift_picture_ids,
    starts_keyframe,
)

NTP_ONE_SECOND = 1 << 32
HALF_SEQUENCE_SPACE = 0x8000
OLDEST_ACCEPTED = 0x4000  # packets behind the newest; older ones only come from a bug


Spliced = tuple[int, int, bytes]
"""A packet as the slot sends it: sequence number, timestamp, payload (a plain tuple: one
is made per packet and subscriber)."""


class StreamSplice:
    """Maps each forwarded packet's numbering onto the slot's own; drops what may not go."""

    def __init__(
        self, video: bool, clock_rate: int, first_sequence: int, first_timestamp: int
    ) -> None:
        self._video = video
        self._clock_rate = clock_rate
        self._ssrc: int | None = None
        """The source being forwarded; None while waiting for one to start."""
        self._start = 0
        """The source's sequence number of its first packet forwarded, or once it has
        sent more, of the oldest packet still accepted."""
        self._sequence_offset = 0
        self._timestamp_offset = 0
        self._picture_id_offset = 0
        self._tl0_offset = 0
        self._next_sequence = first_sequence
        self._first_timestamp = first_timestamp
        self._last_timestamp: int | None = None
        self._last_ntp = 0
        self._last_payload = b""
        self.sources = 0
        """How many sources have started on this slot."""
        self.interrupted = False
        """Set when a source's stream changed SSRC mid-way: its slot waits for a keyframe."""

    @property
    def waiting(self) -> bool:
        """Whether the slot waits for a source to start (a video source at a keyframe)."""
        return self._ssrc is None

    def restart(self) -> None:
        """The slot's source changes: wait for the next one to start."""
        self._ssrc = None

    def map(
        self, ssrc: int, sequence: int, timestamp: int, payload: bytes, ntp: int
    ) -> Spliced | None:
        """The packet as the slot sends it, or None to drop it (a video source not yet at a
        keyframe, or a packet from before the source started). ``ntp``: now, as an NTP
        timestamp, to space the timestamps of a new source from the last one's."""
        if ssrc != self._ssrc:
            if self._video and not starts_keyframe(payload):
                if self._ssrc is not None:
                    self.interrupted = True
                    self._ssrc = None
                return None
            self._start_source(ssrc, sequence, timestamp, payload, ntp)
        elif (sequence - self._start) & 0xFFFF >= HALF_SEQUENCE_SPACE:
            return None  # older than the packet this source started at
        out_sequence = (sequence + self._sequence_offset) & 0xFFFF
        out_timestamp = (timestamp + self._timestamp_offset) & 0xFFFFFFFF
        if self._picture_id_offset or self._tl0_offset:
            ids = picture_ids(payload)
            payload = shift_picture_ids(payload, ids, self._picture_id_offset, self._tl0_offset)
        if (out_sequence - self._next_sequence) & 0xFFFF < HALF_SEQUENCE_SPACE:
            self._next_sequence = (out_sequence + 1) & 0xFFFF
            self._last_timestamp = out_timestamp
            self._last_ntp = ntp
            self._last_payload = payload
            if (sequence - self._start) & 0xFFFF > OLDEST_ACCEPTED:
                # Move the boundary along: against a fixed one, sequence numbers half the
                # space on would count as older than the start.
                self._start = (sequence - OLDEST_ACCEPTED) & 0xFFFF
        return out_sequence, out_timestamp, payload

    def _start_source(
        self, ssrc: int, sequence: int, timestamp: int, payload: bytes, ntp: int
    ) -> None:
        self._ssrc = ssrc
        self._start = sequence
        self.sources += 1
        self._sequence_offset = (self._next_sequence - sequence) & 0xFFFF
        if self._last_timestamp is None:
            out_timestamp = self._first_timestamp
        else:
            elapsed = max(1, (ntp - self._last_ntp) * self._clock_rate // NTP_ONE_SECOND)
            out_timestamp = self._last_timestamp + elapsed
        self._timestamp_offset = (out_timestamp - timestamp) & 0xFFFFFFFF
        if self._video:
            before = picture_ids(self._last_payload) if self._last_payload else NO_IDS
            self._picture_id_offset, self._tl0_offset = _id_offsets(before, picture_ids(payload))


def _id_offsets(before: PictureIds, now: PictureIds) -> tuple[int, int]:
    """Offsets that make the new source's ids follow the last ones sent."""
    picture_id_offset = tl0_offset = 0
    if before.picture_id is not None and now.picture_id is not None:
        space = PICTURE_ID_15 if now.long_picture_id else PICTURE_ID_7
        picture_id_offset = (before.picture_id + 1 - now.picture_id) % space
    if before.tl0 is not None and now.tl0 is not None:
        tl0_offset = (before.tl0 + 1 - now.tl0) & 0xFF
    return picture_id_offset, tl0_offset
