"""Decision drafts: what an officer has chosen and typed so far, kept so a reload gives it
back. One per officer per interview, for that officer alone; gone once their agency's
decision is in. The notes are personal data: this module never logs them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from common.names import Agency
from server.types import AccountId, Clock, Verdict, iso

from .database import Database


@dataclass(frozen=True)
class Draft:
    verdict: Verdict | None
    reason_codes: tuple[str, ...]
    notes: str
    saved_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Draft:
        return cls(
            verdict=None if row["verdict"] is None else Verdict(row["verdict"]),
            reason_codes=tuple(json.loads(row["reason_codes"])),
            notes=row["notes"],
            saved_at=row["saved_at"],
        )

    def as_json(self) -> dict[str, object]:
        """As the officer's form holds it."""
        return {
            "verdict": self.verdict,
            "reason_codes": list(self.reason_codes),
            "notes": self.notes,
        }


class DraftStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def save(
        self,
        interview_id: str,
        officer_id: AccountId,
        agency: Agency,
        verdict: Verdict | None,
        reason_codes: tuple[str, ...],
        notes: str,
    ) -> bool:
        """Keep the officer's draft in place of the one before; False, keeping nothing, if
        their agency has decided. The check and the write are one statement, so a save
        that arrives after the decision never leaves a draft behind."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO decision_drafts"
                " (interview_id, officer_id, agency, verdict, reason_codes, notes, saved_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM decisions WHERE interview_id = ? AND agency = ?)"
                " ON CONFLICT (interview_id, officer_id) DO UPDATE SET"
                " agency = excluded.agency, verdict = excluded.verdict,"
                " reason_codes = excluded.reason_codes, notes = excluded.notes,"
                " saved_at = excluded.saved_at",
                (
                    interview_id,
                    officer_id,
                    agency,
                    verdict,
                    json.dumps(list(reason_codes)),
                    notes,
                    iso(self._clock()),
                    interview_id,
                    agency,
                ),
            )
            kept = cursor.rowcount > 0
        return kept

    async def get(self, interview_id: str, officer_id: AccountId) -> Draft | None:
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT verdict, reason_codes, notes, saved_at FROM decision_drafts"
                    " WHERE interview_id = ? AND officer_id = ?",
                    (interview_id, officer_id),
                )
            )
        return Draft.from_row(rows[0]) if rows else None

    async def discard(self, interview_id: str, agency: Agency) -> None:
        """The agency has decided: its officers' drafts of this interview are done with."""
        async with self._database.transaction() as db:
            await db.execute(
                "DELETE FROM decision_drafts WHERE interview_id = ? AND agency = ?",
                (interview_id, agency),
            )
