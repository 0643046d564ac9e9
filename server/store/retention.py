"""Retention's side of the store: legal holds, the records already shredded, and the
interviews whose retention period began before a given moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from common.errors import Conflict, NotFound
from server.types import Clock, iso, parse_iso

from .database import Database

# An interview's retention period begins at its last decision, or, for one that ended
# without decisions (no-show, interrupted, cancelled), when it ended.
_BEGAN_BEFORE = """
SELECT i.id, coalesce(
    (SELECT max(d.decided_at) FROM decisions d WHERE d.interview_id = i.id), i.updated_at
) AS began
FROM interviews i
WHERE i.phase IN ('closed', 'cancelled', 'no_show', 'interrupted')
  AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.interview_id = i.id)
  AND NOT EXISTS (SELECT 1 FROM shredded_records s WHERE s.interview_id = i.id AND s.files >= 0)
  AND began < ?
ORDER BY began
"""


CLAIMED = -1
"""`shredded_records.files` while the record is being shredded."""


@dataclass(frozen=True)
class Hold:
    interview_id: str
    reason: str
    placed_by: str
    placed_at: datetime


class RetentionStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def began_before(self, moment: datetime) -> list[tuple[str, datetime]]:
        """Ended interviews, neither held nor shredded, whose retention period began
        before ``moment``: (interview id, when it began), oldest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(_BEGAN_BEFORE, (iso(moment),))
        return [(interview_id, parse_iso(began)) for interview_id, began in rows]

    async def hold(self, interview_id: str, reason: str, placed_by: str) -> bool:
        """Place a legal hold; False if one is already there (it is kept as it was)."""
        async with self._database.transaction() as db:
            if not await db.execute_fetchall(
                "SELECT 1 FROM interviews WHERE id = ?", (interview_id,)
            ):
                raise NotFound("there is no interview {interview}", interview=interview_id)
            if await db.execute_fetchall(
                "SELECT 1 FROM shredded_records WHERE interview_id = ?", (interview_id,)
            ):
                raise Conflict(
                    "the record of {interview} is shredded, or being shredded: there is "
                    "nothing left to hold",
                    interview=interview_id,
                )
            cursor = await db.execute(
                "INSERT INTO legal_holds (interview_id, reason, placed_by, placed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (interview_id, reason, placed_by, iso(self._clock())),
            )
            return cursor.rowcount == 1

    async def release(self, interview_id: str) -> bool:
        """Lift a legal hold; False if there was none."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM legal_holds WHERE interview_id = ?", (interview_id,)
            )
            return cursor.rowcount == 1

    async def holds(self) -> list[Hold]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT interview_id, reason, placed_by, placed_at FROM legal_holds"
                " ORDER BY placed_at"
            )
        return [Hold(i, reason, by, parse_iso(at)) for i, reason, by, at in rows]

    async def is_held(self, interview_id: str) -> bool:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT 1 FROM legal_holds WHERE interview_id = ?", (interview_id,)
            )
        return bool(rows)

    async def claim_for_shredding(self, interview_id: str, reason: str) -> bool:
        """Mark the record as being shredded, unless a legal hold is on it (False): one
        transaction, so a hold placed meanwhile either comes first and is seen, or comes
        after and is refused. A claim left by a crash is taken again."""
        async with self._database.transaction() as db:
            if await db.execute_fetchall(
                "SELECT 1 FROM legal_holds WHERE interview_id = ?", (interview_id,)
            ):
                return False
            await db.execute(
                "INSERT INTO shredded_records (interview_id, reason, files, shredded_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (interview_id, reason, CLAIMED, iso(self._clock())),
            )
        return True

    async def unclaim(self, interview_id: str) -> None:
        """The shred did not happen: the record is not being shredded after all."""
        async with self._database.transaction() as db:
            await db.execute(
                "DELETE FROM shredded_records WHERE interview_id = ? AND files = ?",
                (interview_id, CLAIMED),
            )

    async def shredded(self, interview_id: str, files: int) -> None:
        """The claimed record is shredded: ``files`` of its files (a second shred of it
        changes nothing here)."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE shredded_records SET files = ?, shredded_at = ?"
                " WHERE interview_id = ? AND files = ?",
                (files, iso(self._clock()), interview_id, CLAIMED),
            )
