"""Sliding-window rate limits kept in the serving process: at most a number of events per
key (a client address, an invitation) in any window of time."""

from __future__ import annotations

from collections import deque

from .types import Clock


class SlidingWindow:
    """At most ``limit`` events per key in any ``window`` seconds.

    Keys idle for a whole window are forgotten once more than ``max_keys`` are held, so a
    flood of distinct keys costs memory for one window at most."""

    def __init__(self, limit: int, window: float, clock: Clock, max_keys: int = 100_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit allows at least one event in a positive window")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        """The keys held: idle ones are dropped once more than ``max_keys`` are."""
        return len(self._events)

    def take(self, key: str) -> int | None:
        """Count one event for ``key``; when the limit is already reached, count nothing
        and return the whole seconds until the next event is allowed."""
        now = self._clock().timestamp()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        if len(events) >= self._limit:
            return int(events[0] + self._window - now) + 1
        events.append(now)
        if len(self._events) > self._max_keys:
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, e in self._events.items() if not e or e[-1] <= now - self._window]
        for key in idle:
            del self._events[key]
