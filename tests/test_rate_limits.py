"""The sliding window behind the sign-in throttle and the device check's limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rate_limits import SlidingWindow

from .fakes import FakeClock


@given(
    limit=st.integers(1, 5),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=60),
)
def test_no_window_ever_holds_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = FakeClock()
    window = SlidingWindow(limit, 60, clock)
    allowed: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        now = clock().timestamp()
        if window.take("client") is None:
            allowed.append(now)
        else:  # refused only when the window really is full
            assert len([t for t in allowed if t > now - 60]) == limit

    for t in allowed:
        assert len([u for u in allowed if t - 60 < u <= t]) <= limit


def test_the_wait_it_gives_is_the_wait_needed() -> None:
    clock = FakeClock()
    window = SlidingWindow(2, 60, clock)
    assert window.take("a") is None
    clock.advance(20)
    assert window.take("a") is None

    wait = window.take("a")

    assert wait == 41  # the first event leaves the window 40 s from now
    clock.advance(39)
    assert window.take("a") is not None  # a refusal counts nothing, and too early is early
    clock.advance(wait - 39)
    assert window.take("a") is None
    assert window.take("b") is None  # keys are counted apart


def test_idle_keys_are_forgotten_once_too_many_are_held() -> None:
    clock = FakeClock()
    window = SlidingWindow(1, 60, clock, max_keys=10)
    for n in range(10):
        window.take(f"old-{n}")
    clock.advance(61)

    assert len(window) == 10

    window.take("new")

    assert len(window) == 1  # only the key still in its window is held


def test_a_limit_must_allow_something() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        SlidingWindow(0, 60, FakeClock())
