"""The incoming-bitrate counter of aiortc's REMB estimator, without a thousand objects.

aiortc's `RateCounter` keeps one `RateBucket` object per millisecond of its one-second
window, and every video receiver has one (allocated twice: once more on its first
packet). The cyclic garbage collector walks all of them on each full collection: on a
server with 12 rooms they were 108,000 of its 267,000 objects, and full collections
during a burst of joins paused the event loop for 50-90 ms. `CompactRateCounter` counts
the same in two lists of integers, which the collector does not walk, and after a pause
longer than its window it starts afresh instead of stepping through every millisecond.
"""

from __future__ import annotations

from aiortc.rate import RateCounter


class CompactRateCounter(RateCounter):
    """Same results as `aiortc.rate.RateCounter` (checked by a property test)."""

    def reset(self) -> None:
        self._clear()
        self._origin_index = 0
        self._origin_ms: int | None = None

    def _clear(self) -> None:
        self._counts = [0] * self._window_size
        self._values = [0] * self._window_size
        self._total_count = self._total_value = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        self._counts[index] += 1
        self._values[index] += value
        self._total_count += 1
        self._total_value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_window_ms = now_ms - self._origin_ms + 1
        if self._total_count > 0 and active_window_ms > 1:
            return round(self._scale * self._total_value / active_window_ms)
        return None

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        new_origin_ms = now_ms - self._window_size + 1
        if new_origin_ms - self._origin_ms >= self._window_size:
            self._clear()  # the whole window has passed
            self._origin_index = (self._origin_index + new_origin_ms - self._origin_ms) % (
                self._window_size
            )
            self._origin_ms = new_origin_ms
            return
        while self._origin_ms < new_origin_ms:
            index = self._origin_index
            self._total_count -= self._counts[index]
            self._total_value -= self._values[index]
            self._counts[index] = self._values[index] = 0
            self._origin_index = (index + 1) % self._window_size
            self._origin_ms += 1
