"""The last outcome of the server's check of each closed session record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from server.types import Clock, iso, parse_iso

from .database import Database


@dataclass(frozen=True)
class RecordCheck:
    interview_id: str
    ok: bool
    problems: list[str]
    checked_at: datetime | None = None


class RecordCheckStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def passed(self, again: int = 0) -> set[str]:
        """The records whose last check found nothing wrong, less the ``again`` checked
        longest ago: those are read again, so every record is re-read in turn."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT interview_id FROM record_checks WHERE ok"
                " ORDER BY checked_at DESC, interview_id"
            )
        passed = [interview_id for (interview_id,) in rows]
        return set(passed[: max(0, len(passed) - again)])

    async def save(self, checks: Iterable[RecordCheck]) -> None:
        """Each check replaces the record's last one."""
        now = iso(self._clock())
        async with self._database.transaction() as db:
            await db.executemany(
                "INSERT INTO record_checks (interview_id, checked_at, ok, problems)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (interview_id) DO UPDATE SET"
                " checked_at = excluded.checked_at, ok = excluded.ok,"
                " problems = excluded.problems",
                [(c.interview_id, now, int(c.ok), json.dumps(c.problems)) for c in checks],
            )

    async def failed_count(self) -> int:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall("SELECT count(*) FROM record_checks WHERE NOT ok")
        return int(next(iter(rows))[0])

    async def failed(self) -> list[RecordCheck]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT interview_id, ok, problems, checked_at FROM record_checks"
                " WHERE NOT ok ORDER BY checked_at DESC, interview_id"
            )
        return [RecordCheck(i, bool(ok), json.loads(p), parse_iso(at)) for i, ok, p, at in rows]
