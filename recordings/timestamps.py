"""When each frame of a recorded segment plays: its stream's RTP timing put on the
segment's clock (`StreamClock`).

A frame's pts come from its sender's RTP timing, not from when it arrived: a server that
stalls hands on the frames it held back all at once, and pts taken from arrival would
squeeze them together and leave holes a player cannot bridge. The frames of one stream
may then be earlier than frames of the other already written: each stream goes into
clusters of its own (`webm.ClusterWriter`), which browsers' WebM parsers take.
"""

from __future__ import annotations

from fractions import Fraction

RTP_WRAP = 2**32
# How far a stream's pts may stray from when its frames arrived. Longer than the stalls
# a loaded server or a resent packet causes, whose frames keep their spacing; short
# enough that whatever a sender does, its stream stays within this of the session's
# clock (a sender whose RTP clock runs slow rides this far behind it, not further).
MAX_SKEW_MS = 3000


class StreamClock:
    """One stream's pts (ms) in a segment: its frames' RTP timing, unwrapped past 2**32,
    anchored at the arrival of its first frame. A seat's audio and video RTP clocks start
    at unrelated random values, so arrival is what puts both on the segment's clock.

    The timeline is re-anchored at arrival where it breaks (a sender restarted with a new
    random RTP base: a step far back, or further ahead than the time gone by), and held
    within `MAX_SKEW_MS` of arrival where it drifts: frames arriving later than that are
    moved up to it, a sender that runs ahead of the clock is held back to it."""

    def __init__(self) -> None:
        self._last_rtp: int | None = None  # the latest timestamp as sent, 32 bits
        self._last_arrival = 0
        self._ticks = 0  # the latest timestamp, unwrapped
        self._anchor_ticks = 0
        self._anchor_ms = 0
        self._time_base = Fraction(0)
        self.last_pts = -1

    def pts(self, rtp: int, time_base: Fraction, arrival_ms: int) -> int:
        """Strictly increasing, as Matroska wants."""
        rtp %= RTP_WRAP
        if self._last_rtp is None or time_base != self._time_base:
            self._anchor(time_base, arrival_ms)
        else:
            # the shorter way round: a frame a little older than the last steps back
            step = (rtp - self._last_rtp + RTP_WRAP // 2) % RTP_WRAP - RTP_WRAP // 2
            self._ticks += step
            step_ms = step * time_base * 1000
            if not -MAX_SKEW_MS <= step_ms <= arrival_ms - self._last_arrival + MAX_SKEW_MS:
                self._anchor(time_base, max(arrival_ms, self.last_pts + 1))
        self._last_rtp, self._last_arrival = rtp, arrival_ms
        media_ms = self._anchor_ms + round((self._ticks - self._anchor_ticks) * time_base * 1000)
        bounded = min(max(media_ms, arrival_ms - MAX_SKEW_MS), arrival_ms + MAX_SKEW_MS)
        self._anchor_ms += bounded - media_ms  # drift: the timeline carries on from here
        self.last_pts = max(bounded, self.last_pts + 1)
        return self.last_pts

    def _anchor(self, time_base: Fraction, at_ms: int) -> None:
        self._anchor_ticks = self._ticks
        self._anchor_ms = at_ms
        self._time_base = time_base
