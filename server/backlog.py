"""The backlog as the operator watches it burn down: states, throughput, the burn-down
and the projected clearance date. Pure: the figures come from `store.backlog`, the day
and hour are given.

The projection is the plain one an operator can check by hand: what remains, divided by
the applications decided per day over the last `RATE_DAYS` days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from common.names import Agency

from .scheduling import Hold, RosterWindow
from .store.backlog import DailyFlow, HourlyDecisions

RATE_DAYS = 7
"""The projection's rate is the mean of this many days, today included."""
HOURS_SHOWN = 24
"""Decisions per hour are shown for this many hours, the current one included."""
BURNDOWN_DAYS = 28
"""The burn-down shows at most this many past days."""


class BacklogState(StrEnum):
    """Where an application stands, in the order it gets there."""

    TO_INVITE = "to_invite"
    INVITED = "invited"
    INTERVIEWED = "interviewed"
    DECIDED = "decided"
    NO_SHOW = "no_show"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    BacklogState.TO_INVITE: "To invite",
    BacklogState.INVITED: "Invited",
    BacklogState.INTERVIEWED: "Interviewed, awaiting decisions",
    BacklogState.DECIDED: "Decided",
    BacklogState.NO_SHOW: "No-show",
}


@dataclass(frozen=True)
class Backlog:
    counts: Mapping[BacklogState, int]

    @classmethod
    def of(cls, stored: Mapping[str, int]) -> Backlog:
        return cls({state: stored.get(state.value, 0) for state in BacklogState})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        """Applications not yet decided."""
        return self.total - self.counts[BacklogState.DECIDED]


@dataclass(frozen=True)
class HourRow:
    hour: datetime
    by_agency: Mapping[Agency, int]


def hourly(rows: Iterable[HourlyDecisions], now: datetime) -> list[HourRow]:
    """Decisions per agency in each of the last `HOURS_SHOWN` hours, oldest first, hours
    without any included as zeros."""
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=back) for back in reversed(range(HOURS_SHOWN))]
    counts = {(row.hour, row.agency): row.count for row in rows}
    return [HourRow(h, {a: counts.get((h, a), 0) for a in Agency}) for h in hours]


@dataclass(frozen=True)
class DayRow:
    day: date
    remaining: int
    projected: bool = False


@dataclass(frozen=True)
class Burndown:
    days: Sequence[DayRow]  # what remained at the end of each past day, today last
    rate_per_day: float
    clears_on: date | None  # None: nothing is being decided, so no date can be promised

    @property
    def projection(self) -> list[DayRow]:
        """The straight line from today's remaining to zero on `clears_on`."""
        if not self.days or self.clears_on is None:
            return []
        today = self.days[-1]
        return [today, DayRow(self.clears_on, 0, projected=True)]


def burndown(flow: Sequence[DailyFlow], today: date) -> Burndown:
    """What remained undecided at the end of each day (the last `BURNDOWN_DAYS`), the
    recent rate of decisions, and the day the backlog clears at that rate."""
    by_day = {row.day: row for row in flow}
    start = min([row.day for row in flow] or [today])
    remaining, days = 0, []
    day = start
    while day <= today:
        row = by_day.get(day)
        if row is not None:
            remaining += row.imported - row.decided
        days.append(DayRow(day, remaining))
        day += timedelta(days=1)
    recent = today - timedelta(days=RATE_DAYS - 1)
    decided = sum(row.decided for row in flow if recent <= row.day <= today)
    rate = decided / RATE_DAYS
    clears_on = None
    if remaining == 0:
        clears_on = today
    elif rate > 0:
        clears_on = today + timedelta(days=math.ceil(remaining / rate))
    return Burndown(days[-BURNDOWN_DAYS:], rate, clears_on)


@dataclass(frozen=True)
class Utilisation:
    rostered_hours: float
    booked_hours: float

    @property
    def share(self) -> float | None:
        """Booked time over rostered time; None without rostered time."""
        return self.booked_hours / self.rostered_hours if self.rostered_hours else None


def utilisation(
    windows: Iterable[RosterWindow], holds: Iterable[Hold], starts: datetime, ends: datetime
) -> dict[int, Utilisation]:
    """Each officer's rostered and booked hours between ``starts`` and ``ends`` (what lies
    outside is cut off)."""

    def hours(a: datetime, b: datetime) -> float:
        return max(0.0, (min(b, ends) - max(a, starts)).total_seconds() / 3600)

    rostered: dict[int, float] = {}
    booked: dict[int, float] = {}
    for window in windows:
        rostered[window.officer_id] = rostered.get(window.officer_id, 0.0) + hours(
            window.starts, window.ends
        )
    for hold in holds:
        booked[hold.officer_id] = booked.get(hold.officer_id, 0.0) + hours(hold.starts, hold.ends)
    return {
        officer: Utilisation(rostered.get(officer, 0.0), booked.get(officer, 0.0))
        for officer in rostered.keys() | booked.keys()
    }
