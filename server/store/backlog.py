"""What the operator's console counts: the backlog by state, decisions by hour and
agency, applications imported and decided by day, and each officer's work. Read only;
each figure is one SQL statement, so a large backlog is counted by SQLite, not in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from common.names import Agency
from server.types import iso

from .database import Database

# An application's state in the backlog follows its status and its latest interview's phase
# (a later interview replaces an earlier one): one CASE, so each application counts once.
# Decided and pending applications are told by their status alone (an index on it is
# enough); only those in between look up their latest interview (the CASE's last branch
# is evaluated only for them).
_STATES = """
SELECT coalesce(CASE
    WHEN a.status IN ('approved', 'denied', 'referred') THEN 'decided'
    WHEN a.status = 'pending' THEN 'to_invite'
    ELSE (SELECT CASE
              WHEN i.phase IN ('cancelled', 'interrupted') THEN 'to_invite'
              WHEN i.phase = 'no_show' THEN 'no_show'
              WHEN i.phase IN ('awaiting_decisions', 'closed') THEN 'interviewed'
              ELSE 'invited'
          END
          FROM interviews i WHERE i.application_id = a.id
          ORDER BY i.created_at DESC, i.rowid DESC LIMIT 1)
END, 'to_invite') AS state, count(*)
FROM applications a
GROUP BY state
"""
_DECISIONS_BY_HOUR = """
SELECT substr(decided_at, 1, 13) AS hour, agency, count(*)
FROM decisions WHERE decided_at >= ? GROUP BY hour, agency ORDER BY hour
"""

# The day each application was imported, and the day its current final status came (an
# application referred and interviewed again is undecided until its new decisions): so the
# burn-down ends where the backlog by state stands.
_IMPORTED_BY_DAY = (
    "SELECT substr(created_at, 1, 10) AS day, count(*) FROM applications GROUP BY day"
)
_DECIDED_BY_DAY = """
SELECT substr(decided_at, 1, 10) AS day, count(*) FROM (
    SELECT max(h.at) AS decided_at FROM application_status_history h
    JOIN applications a ON a.id = h.application_id
    WHERE a.status IN ('approved', 'denied', 'referred') AND h.to_status = a.status
    GROUP BY h.application_id)
GROUP BY day
"""

# Each officer's decisions in the period, and the minutes of those interviews' calls (an
# interview's first join to its last end), each call's minutes counted once beforehand.
_OFFICER_WORK = """
WITH calls AS (
    SELECT e.interview_id, (julianday(max(CASE WHEN e.kind = 'end' THEN e.at END))
        - julianday(min(CASE WHEN e.kind = 'join' THEN e.at END))) * 1440 AS minutes
    FROM interview_events e
    WHERE e.kind IN ('join', 'end')
      AND e.interview_id IN (SELECT interview_id FROM decisions WHERE decided_at >= ?1)
    GROUP BY e.interview_id)
SELECT a.id, a.display_name, o.agency, count(d.interview_id), coalesce(sum(c.minutes), 0)
FROM officers o JOIN accounts a ON a.id = o.account_id
LEFT JOIN decisions d ON d.officer_id = o.account_id AND d.decided_at >= ?1
LEFT JOIN calls c ON c.interview_id = d.interview_id
WHERE a.disabled_at IS NULL
GROUP BY a.id ORDER BY o.agency, a.display_name
"""


@dataclass(frozen=True)
class HourlyDecisions:
    hour: datetime  # the hour's start, UTC
    agency: Agency
    count: int


@dataclass(frozen=True)
class DailyFlow:
    day: date
    imported: int
    decided: int


@dataclass(frozen=True)
class OfficerWork:
    account_id: int
    name: str
    agency: Agency
    interviews: int
    call_minutes: float


class BacklogStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def states(self) -> dict[str, int]:
        """How many applications are in each backlog state (states with none are absent)."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(_STATES)
        return {state: count for state, count in rows}

    async def decisions_by_hour(self, since: datetime) -> list[HourlyDecisions]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(_DECISIONS_BY_HOUR, (iso(since),))
        return [
            HourlyDecisions(datetime.fromisoformat(f"{hour}:00:00+00:00"), Agency(agency), n)
            for hour, agency, n in rows
        ]

    async def daily_flow(self) -> list[DailyFlow]:
        """Every day on which applications were imported or decided, in order."""
        async with self._database.transaction() as db:
            imported: dict[str, int] = {
                d: n for d, n in await db.execute_fetchall(_IMPORTED_BY_DAY)
            }
            decided: dict[str, int] = {d: n for d, n in await db.execute_fetchall(_DECIDED_BY_DAY)}
        return [
            DailyFlow(date.fromisoformat(day), imported.get(day, 0), decided.get(day, 0))
            for day in sorted(imported.keys() | decided.keys())
        ]

    async def officer_work(self, since: datetime) -> list[OfficerWork]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(_OFFICER_WORK, (iso(since),))
        return [
            OfficerWork(account_id, name, Agency(agency), interviews, max(0.0, float(minutes)))
            for account_id, name, agency, interviews, minutes in rows
        ]
