"""Decisions: one per agency per interview. Storing the second one settles the application."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import aiosqlite

from common.errors import Conflict
from common.names import Agency
from server.types import AccountId, ApplicationStatus, Clock, InterviewId, Verdict, iso

from ..application_status import status_after_decisions
from .applications import ApplicationStore
from .database import Database


@dataclass(frozen=True)
class Decision:
    interview_id: InterviewId
    agency: Agency
    verdict: Verdict
    reason_codes: tuple[str, ...]
    notes: str
    officer_id: AccountId
    decided_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Decision:
        return cls(
            interview_id=InterviewId(row["interview_id"]),
            agency=Agency(row["agency"]),
            verdict=Verdict(row["verdict"]),
            reason_codes=tuple(json.loads(row["reason_codes"])),
            notes=row["notes"],
            officer_id=AccountId(row["officer_id"]),
            decided_at=row["decided_at"],
        )


class DecisionStore:
    def __init__(self, database: Database, applications: ApplicationStore, clock: Clock) -> None:
        self._database = database
        self._applications = applications
        self._clock = clock

    async def record(
        self,
        db: aiosqlite.Connection,
        interview_id: InterviewId,
        application_id: str,
        agency: Agency,
        verdict: Verdict,
        reason_codes: tuple[str, ...],
        notes: str,
        officer_id: AccountId,
        actor: str,
    ) -> ApplicationStatus:
        """Store the agency's decision inside the caller's transaction (the one that
        stores the interview's life); once both are in, the application takes its result.
        Returns the application's status afterwards."""
        now = iso(self._clock())
        try:
            await db.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    interview_id,
                    agency,
                    verdict,
                    json.dumps(list(reason_codes)),
                    notes,
                    officer_id,
                    now,
                ),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"{agency} has already decided interview {interview_id}") from None
        rows = await db.execute_fetchall(
            "SELECT agency, verdict FROM decisions WHERE interview_id = ?", (interview_id,)
        )
        verdicts = {Agency(row[0]): Verdict(row[1]) for row in rows}
        return await self._applications.change_status(
            db,
            application_id,
            lambda current: status_after_decisions(
                current, verdicts.get(Agency.CBSA), verdicts.get(Agency.CBP)
            ),
            f"decisions: CBSA {verdicts.get(Agency.CBSA)}, CBP {verdicts.get(Agency.CBP)}",
            actor,
        )

    async def for_interview(self, interview_id: str) -> dict[Agency, Decision]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM decisions WHERE interview_id = ?", (interview_id,)
            )
        return {decision.agency: decision for decision in map(Decision.from_row, rows)}
