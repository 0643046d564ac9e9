"""Interview events: SQLite's copy, for queries, of what each interview's journal (its
signed session record) holds; written by `server.lives` in the step that journals them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from .database import Database


@dataclass(frozen=True)
class StoredEvent:
    at: str
    kind: str
    seat: str | None
    detail: dict[str, Any]


# For each of the latest ``end`` events an officer gave (``by``), the first ``join`` of
# that interview since its previous ``end``: a two-step interview's steps are two calls.
_RECENT_CALLS = """
SELECT e.at, (
    SELECT j.at FROM interview_events j
    WHERE j.interview_id = e.interview_id AND j.kind = 'join' AND j.id < e.id
      AND j.id > coalesce((
          SELECT max(p.id) FROM interview_events p
          WHERE p.interview_id = e.interview_id AND p.kind = 'end' AND p.id < e.id), 0)
    ORDER BY j.id LIMIT 1)
FROM interview_events e
WHERE e.kind = 'end' AND json_extract(e.detail, '$.by') IS NOT NULL
ORDER BY e.id DESC LIMIT ?
"""


async def insert_event(
    db: aiosqlite.Connection,
    interview_id: str,
    at: float,
    kind: str,
    seat: str | None,
    detail: Mapping[str, Any],
) -> None:
    """One event, inside the caller's transaction (the one that stores the life)."""
    moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    await db.execute(
        "INSERT INTO interview_events (interview_id, at, kind, seat, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (interview_id, moment, kind, seat, json.dumps(detail, sort_keys=True, default=str)),
    )


class EventStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def append(
        self, interview_id: str, at: float, kind: str, seat: str | None, detail: dict[str, Any]
    ) -> None:
        """An event on its own (history made for tests and imports)."""
        async with self._database.transaction() as db:
            await insert_event(db, interview_id, at, kind, seat, detail)

    async def for_interview(self, interview_id: str) -> list[StoredEvent]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT at, kind, seat, detail FROM interview_events"
                " WHERE interview_id = ? ORDER BY id",
                (interview_id,),
            )
        return [StoredEvent(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def recent_call_seconds(self, limit: int) -> list[float]:
        """The lengths, in seconds, of the latest ``limit`` calls an officer ended, newest
        first (a call nobody joined is left out): the waiting room's estimates follow them."""
        async with self._database.transaction() as db:
            rows = list(await db.execute_fetchall(_RECENT_CALLS, (limit,)))
        lengths = []
        for ended, started in rows:
            if started is None:
                continue
            call = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
            if call.total_seconds() > 0:
                lengths.append(call.total_seconds())
        return lengths
