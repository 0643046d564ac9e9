"""When each frame of a recorded segment plays: its stream's RTP timing put on the
segment's clock (`StreamClock`), and the order the frames go into the file (`Interleaver`).

A frame's pts come from its sender's RTP timing, not from when it arrived: a server that
stalls hands on the frames it held back all at once, and pts taken from arrival would
squeeze them together and leave holes a player cannot bridge. But the frames of one
stream may then be earlier than frames of the other already written, and browsers' WebM
parsers (Media Source Extensions) refuse a block earlier than the one before it in a
cluster, whatever its track; so frames wait a little for the other stream to catch up,
and one that comes later still is moved up to what is already written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from signalling.types import Kind

RTP_WRAP = 2**32
# How far a stream's pts may stray from when its frames arrived. Longer than the stalls
# a loaded server or a resent packet causes, whose frames keep their spacing; short
# enough that whatever a sender does, its stream stays within this of the session's
# clock (a sender whose RTP clock runs slow rides this far behind it, not further).
MAX_SKEW_MS = 3000
# How long a frame may wait for the other stream to reach its pts before it is written:
# as long as a stream may lag, so a lagging stream's frames keep their place rather than
# being squeezed in after what was written meanwhile. Media waiting here is lost in a
# crash. In a call a frame waits about one frame of the other stream, so what a crash
# loses stays about a second (see `recorder.CLUSTER_MS`); only while a stream lags (a
# sender's pacer holding video back, a slow RTP clock riding up to MAX_SKEW_MS behind)
# does it add up to this. Shorter would bound that too, but a stream whose timeline sits
# further behind the other than this would then be moved up behind it frame by frame for
# as long as the offset lasts: its own spacing lost (audio packets 1 ms apart), not just
# its place during the lag.
HOLD_MS = MAX_SKEW_MS

T = TypeVar("T")


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

    def pts(self, rtp: int, time_base: Fraction, arrival_ms: int, floor: int = 0) -> int:
        """Strictly increasing, as Matroska wants, and at least ``floor``."""
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
        self.last_pts = max(bounded, self.last_pts + 1, floor)
        return self.last_pts

    def _anchor(self, time_base: Fraction, at_ms: int) -> None:
        self._anchor_ticks = self._ticks
        self._anchor_ms = at_ms
        self._time_base = time_base


@dataclass(frozen=True, slots=True)
class Timed(Generic[T]):
    kind: Kind
    pts: int
    arrival_ms: int
    item: T


class Interleaver(Generic[T]):
    """Puts a segment's frames in pts order across its streams. A frame waits until
    every other stream has reached its pts, or has gone quiet, or `HOLD_MS` passed;
    `floor` is the pts of the last frame handed on, below which nothing may follow."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._pending: dict[Kind, deque[Timed[T]]] = {kind: deque() for kind in kinds}
        self._heard: dict[Kind, int] = {}  # when each stream's latest frame arrived
        self.floor = 0

    def queue(self, kind: Kind, pts: int, arrival_ms: int, item: T) -> None:
        """Takes a frame (``pts`` at least `floor`) without handing any on: the next
        `push` does, so frames queued before it keep their place before it."""
        if pts < self.floor:
            raise ValueError("a frame may not go before what is already written")
        self._pending[kind].append(Timed(kind, pts, arrival_ms, item))
        self._heard[kind] = arrival_ms

    def push(self, kind: Kind, pts: int, arrival_ms: int, item: T) -> list[Timed[T]]:
        """Takes a frame (``pts`` at least `floor`); returns those that may go out now."""
        self.queue(kind, pts, arrival_ms, item)
        ready = []
        while (first := self._first()) is not None and self._may_go(first, arrival_ms):
            ready.append(self._take(first))
        return ready

    def drain(self) -> list[Timed[T]]:
        """Everything still waiting, in order (the segment closes)."""
        ready = []
        while (first := self._first()) is not None:
            ready.append(self._take(first))
        return ready

    def _first(self) -> Timed[T] | None:
        heads = [queue[0] for queue in self._pending.values() if queue]
        return min(heads, key=lambda timed: timed.pts, default=None)

    def _may_go(self, first: Timed[T], now_ms: int) -> bool:
        if now_ms - first.arrival_ms >= HOLD_MS:
            return True
        return all(
            queue or now_ms - self._heard.get(kind, now_ms - HOLD_MS) >= HOLD_MS
            for kind, queue in self._pending.items()
            if kind is not first.kind
        )

    def _take(self, first: Timed[T]) -> Timed[T]:
        self._pending[first.kind].popleft()
        self.floor = first.pts
        return first
