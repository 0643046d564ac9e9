"""A room's recording, off its forwarding path: the room hands every frame to a
`RecordingFeed`, which only queues it; the recorder (muxing, encryption, output) runs
from the event loop soon after. However the recorder fails (a full disk, a muxer error),
the failure stays here: it is logged, reported once (``on_failure``) and the recording
stops, while the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from common.frames import EncodedFrame
from common.names import Kind, Seat

log = logging.getLogger(__name__)

MAX_QUEUED = 600
"""Frames and publisher changes waiting for the recorder: several seconds of a room's
media. Past it new ones are dropped (counted in ``dropped``) rather than held: a
recorder that cannot keep up must not take the worker's memory, nor slow the call."""
BATCH = 64
"""Frames fed per turn of the event loop, so a long queue never holds up forwarding."""


class FeedRecorder(Protocol):
    """What the feed drives: `recordings.recorder.Recorder`."""

    def on_frame(
        self, seat: Seat, kind: Kind, frame: EncodedFrame, arrived: float | None = None
    ) -> None: ...

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None: ...

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None: ...

    def close(self) -> None: ...


# a frame and when it arrived, or whether the publisher is there
_Item = tuple[Seat, Kind, tuple[EncodedFrame, float] | bool]


class RecordingFeed:
    """Implements `media.types.RecordingSink` around a recorder. ``on_failure(seat,
    reason)`` is called once, after the recorder was closed, if recording stopped on an
    error (``seat``: whose media was being recorded, None if none in particular)."""

    def __init__(
        self,
        recorder: FeedRecorder,
        on_failure: Callable[[Seat | None, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: the recorder's, which dates each frame's arrival."""
        self._recorder: FeedRecorder | None = recorder
        self._clock = clock
        self._on_failure = on_failure
        self._queue: deque[_Item] = deque()
        self._scheduled: asyncio.Handle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.failures = 0
        self.dropped = 0

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None:
        # The recorder's timing follows arrival, and it runs a moment later.
        self._enqueue((seat, kind, (frame, self._clock())))

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        self._enqueue((seat, kind, present))

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        if self._recorder is not None:
            self._recorder.set_keyframe_requester(request)

    def _enqueue(self, item: _Item) -> None:
        if self._recorder is None:
            return
        if len(self._queue) >= MAX_QUEUED:
            if not self.dropped:
                log.warning("the recorder is behind: frames are dropped from the recording")
            self.dropped += 1
            return
        self._queue.append(item)
        if self._scheduled is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to run it later (a room closing outside one)
                self._feed(None)
                return
            self._scheduled = loop.call_soon(self._drain)
            self._idle.clear()

    def _drain(self) -> None:
        self._scheduled = None
        self._feed(BATCH)
        if self._queue and self._recorder is not None:
            self._scheduled = asyncio.get_running_loop().call_soon(self._drain)
        else:
            self._idle.set()

    def _feed(self, most: int | None) -> None:
        """Hands up to ``most`` queued items (all if None) to the recorder."""
        fed = 0
        while self._queue and self._recorder is not None and (most is None or fed < most):
            seat, kind, item = self._queue.popleft()
            fed += 1
            try:
                if isinstance(item, bool):
                    self._recorder.on_publisher_change(seat, kind, item)
                else:
                    self._recorder.on_frame(seat, kind, *item)
            except Exception as exc:
                self._fail(seat, exc)

    def _fail(self, seat: Seat | None, exc: Exception) -> None:
        """Stop recording: close what the recorder holds as best it can (a segment whose
        output still works is sealed), then say why, once."""
        self.failures += 1
        reason = _reason(exc)
        whose = seat.value if seat is not None else "the room"
        log.error("recording stopped (media of %s): %s", whose, reason)
        recorder, self._recorder = self._recorder, None
        self._queue.clear()
        if recorder is not None:
            try:
                recorder.close()
            except Exception as closing:
                log.error("the stopped recording could not be sealed: %s", _reason(closing))
        if self._on_failure is not None and self.failures == 1:
            self._on_failure(seat, reason)

    def stop(self) -> None:
        """Feed what is queued, then seal every open segment and record no more; safe
        twice."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._feed(None)
        self._queue.clear()
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                recorder.close()
            except Exception as exc:
                self._recorder = recorder  # so that `_fail` reports it as a failure
                self._fail(None, exc)
        self._idle.set()

    async def close(self) -> None:
        """`stop`, and return once nothing of the feed runs; safe twice."""
        self.stop()
        await self._idle.wait()


def _reason(exc: Exception) -> str:
    """What went wrong, for a person: the error's kind and message (an OS error's
    message names its cause and file; no media or key material is in either)."""
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:500]
