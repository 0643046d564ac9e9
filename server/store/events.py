"""Interview events as the rooms report them (the tamper-evident log builds on these)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .database import Database


@dataclass(frozen=True)
class StoredEvent:
    at: str
    kind: str
    seat: str | None
    detail: dict[str, Any]


class EventStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def append(
        self, interview_id: str, at: float, kind: str, seat: str | None, detail: dict[str, Any]
    ) -> None:
        moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
        async with self._database.transaction() as db:
            await db.execute(
                "INSERT INTO interview_events (interview_id, at, kind, seat, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (interview_id, moment, kind, seat, json.dumps(detail, sort_keys=True)),
            )

    async def append_once(
        self, interview_id: str, at: float, kind: str, seat: str | None, detail: dict[str, Any]
    ) -> bool:
        """Append the event unless one of its kind is stored already, in one statement, so
        that requests arriving together store it once. True if this call stored it."""
        moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO interview_events (interview_id, at, kind, seat, detail)"
                " SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM interview_events"
                " WHERE interview_id = ? AND kind = ?)",
                (
                    interview_id,
                    moment,
                    kind,
                    seat,
                    json.dumps(detail, sort_keys=True),
                    interview_id,
                    kind,
                ),
            )
        return cursor.rowcount == 1

    async def for_interview(self, interview_id: str) -> list[StoredEvent]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT at, kind, seat, detail FROM interview_events"
                " WHERE interview_id = ? ORDER BY id",
                (interview_id,),
            )
        return [StoredEvent(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def has(self, interview_id: str, kind: str) -> bool:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT 1 FROM interview_events WHERE interview_id = ? AND kind = ? LIMIT 1",
                (interview_id, kind),
            )
        return bool(list(rows))

    async def ended_by(self, interview_id: str) -> set[str]:
        """The seats that ended a call of this interview (``end`` events' ``by``)."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT json_extract(detail, '$.by') FROM interview_events"
                " WHERE interview_id = ? AND kind = 'end'",
                (interview_id,),
            )
        return {str(row[0]) for row in rows if row[0] is not None}
