"""The access log: who reached which record, when, and whether they were let in."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Clock, iso
from .database import Database


@dataclass(frozen=True)
class AccessEntry:
    at: str
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    client: str


class AccessLog:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def append(
        self, actor: str, role: str, action: str, target: str, outcome: str, client: str
    ) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "INSERT INTO access_log (at, actor, role, action, target, outcome, client)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (iso(self._clock()), actor, role, action, target, outcome, client),
            )

    async def entries(self, target: str | None = None, limit: int = 1000) -> list[AccessEntry]:
        where, params = ("WHERE target = ?", (target,)) if target else ("", ())
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT at, actor, role, action, target, outcome, client FROM access_log"
                f" {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
        return [AccessEntry(*row) for row in rows]
