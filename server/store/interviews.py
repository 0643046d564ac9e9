"""Interviews: the window, the hashed invitation token, the state and the two officers."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from ..application_status import status_after_invite
from ..errors import Conflict, NotFound
from ..types import (
    AccountId,
    Agency,
    ApplicationId,
    Clock,
    InterviewId,
    InterviewMode,
    InterviewState,
    iso,
    parse_iso,
)
from .applications import ApplicationStore
from .database import Database

OPEN_STATES = (InterviewState.SCHEDULED, InterviewState.IN_PROGRESS)
_SEAT: Mapping[Agency, str] = MappingProxyType(
    {Agency.CBSA: "cbsa_officer_id", Agency.CBP: "cbp_officer_id"}
)


@dataclass(frozen=True)
class Interview:
    id: InterviewId
    application_id: ApplicationId
    mode: InterviewMode
    window_start: datetime
    window_end: datetime
    state: InterviewState
    cbsa_officer_id: AccountId | None
    cbp_officer_id: AccountId | None
    dob_failures: int
    dob_confirmed: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Interview:
        return cls(
            id=InterviewId(row["id"]),
            application_id=ApplicationId(row["application_id"]),
            mode=InterviewMode(row["mode"]),
            window_start=parse_iso(row["window_start"]),
            window_end=parse_iso(row["window_end"]),
            state=InterviewState(row["state"]),
            cbsa_officer_id=row["cbsa_officer_id"],
            cbp_officer_id=row["cbp_officer_id"],
            dob_failures=row["dob_failures"],
            dob_confirmed=row["dob_confirmed_at"] is not None,
        )

    def officer_for(self, agency: Agency) -> AccountId | None:
        return self.cbsa_officer_id if agency is Agency.CBSA else self.cbp_officer_id

    def is_assigned(self, officer_id: int) -> bool:
        return officer_id in (self.cbsa_officer_id, self.cbp_officer_id)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "application_id": self.application_id,
            "mode": self.mode,
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "state": self.state,
            "cbsa_assigned": self.cbsa_officer_id is not None,
            "cbp_assigned": self.cbp_officer_id is not None,
        }


class InterviewStore:
    def __init__(self, database: Database, applications: ApplicationStore, clock: Clock) -> None:
        self._database = database
        self._applications = applications
        self._clock = clock

    async def schedule(
        self,
        application_id: str,
        mode: InterviewMode,
        window_start: datetime,
        window_end: datetime,
        token_hash: bytes,
        actor: str,
    ) -> InterviewId:
        """A new interview for the application. Links of its earlier open interviews stop
        working: an operator asks for a new link when the old one is lost."""
        if window_end <= window_start:
            raise Conflict("the interview window must end after it starts")
        interview_id = InterviewId("iv_" + secrets.token_hex(8))
        now = iso(self._clock())
        async with self._database.transaction() as db:
            await self._applications.change_status(
                db, application_id, status_after_invite, "interview scheduled", actor
            )
            await db.execute(
                "UPDATE interviews SET state = 'cancelled', updated_at = ?"
                " WHERE application_id = ? AND state = 'scheduled'",
                (now, application_id),
            )
            await db.execute(
                "INSERT INTO interviews (id, application_id, mode, window_start, window_end,"
                " token_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    interview_id,
                    application_id,
                    mode,
                    iso(window_start),
                    iso(window_end),
                    token_hash,
                    now,
                    now,
                ),
            )
        return interview_id

    async def get(self, interview_id: str) -> Interview:
        interview = await self._one("SELECT * FROM interviews WHERE id = ?", (interview_id,))
        if interview is None:
            raise NotFound(f"no interview with id {interview_id!r}")
        return interview

    async def by_token_hash(self, token_hash: bytes) -> Interview | None:
        return await self._one("SELECT * FROM interviews WHERE token_hash = ?", (token_hash,))

    async def _one(self, sql: str, params: tuple[object, ...]) -> Interview | None:
        async with self._database.transaction() as db:
            rows = list(await db.execute_fetchall(sql, params))
        return Interview.from_row(rows[0]) if rows else None

    async def begin_dob_attempt(self, interview_id: str, max_failures: int) -> bool:
        """Count a date-of-birth attempt as wrong before it is compared, in the same
        statement that checks the limit: however many arrive at once, at most
        ``max_failures`` are compared. False: the link is locked, compare nothing."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE interviews SET dob_failures = dob_failures + 1, updated_at = ?"
                " WHERE id = ? AND dob_failures < ?",
                (iso(self._clock()), interview_id, max_failures),
            )
        return cursor.rowcount == 1

    async def confirm_dob(self, interview_id: str) -> None:
        """The date matched: the attempt counted by `begin_dob_attempt` was not wrong."""
        now = iso(self._clock())
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE interviews SET dob_confirmed_at = coalesce(dob_confirmed_at, ?),"
                " dob_failures = max(dob_failures - 1, 0), updated_at = ? WHERE id = ?",
                (now, now, interview_id),
            )

    async def queue(self, agency: Agency) -> list[Interview]:
        """Interviews waiting for an officer of ``agency``, earliest window first."""
        where, params = self._waiting(agency)
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT * FROM interviews i WHERE {where} ORDER BY i.window_start, i.id", params
            )
        return [Interview.from_row(row) for row in rows]

    async def is_waiting_for(self, interview_id: str, agency: Agency) -> bool:
        where, params = self._waiting(agency)
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT 1 FROM interviews i WHERE i.id = ? AND {where}", (interview_id, *params)
            )
        return bool(list(rows))

    async def take(self, interview_id: str, officer_id: AccountId, agency: Agency) -> Interview:
        """Seat the officer in their agency's place if it waits for one (a no-op for the
        officer already seated there); the check and the write are one statement."""
        where, params = self._waiting(agency)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"UPDATE interviews AS i SET {_SEAT[agency]} = ?, state = 'in_progress',"
                f" updated_at = ? WHERE i.id = ? AND {where}",
                (officer_id, iso(self._clock()), interview_id, *params),
            )
        current = await self.get(interview_id)
        if cursor.rowcount != 1 and current.officer_for(agency) != officer_id:
            raise Conflict(f"interview {interview_id} is not waiting for a {agency} officer")
        return current

    def _waiting(self, agency: Agency) -> tuple[str, tuple[str, str]]:
        """The SQL condition (on alias ``i``) for "open, in its window, with ``agency``'s
        seat free"; in two-step mode the CBP seat opens only once CBSA has decided."""
        now = iso(self._clock())
        condition = (
            f"i.state IN ('scheduled', 'in_progress') AND i.{_SEAT[agency]} IS NULL"
            " AND i.window_start <= ? AND i.window_end > ?"
        )
        if agency is Agency.CBP:
            condition += (
                " AND (i.mode = 'joint' OR EXISTS (SELECT 1 FROM decisions d"
                " WHERE d.interview_id = i.id AND d.agency = 'CBSA'))"
            )
        return condition, (now, now)

    async def in_progress_for(self, officer_id: AccountId) -> list[Interview]:
        """Interviews in progress with ``officer_id`` seated, newest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM interviews WHERE state = 'in_progress'"
                " AND (cbsa_officer_id = ? OR cbp_officer_id = ?) ORDER BY updated_at DESC",
                (officer_id, officer_id),
            )
        return [Interview.from_row(row) for row in rows]

    async def all(self, limit: int = 100, offset: int = 0) -> list[Interview]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM interviews ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
        return [Interview.from_row(row) for row in rows]
