"""Interviews: the window, the hashed links (tokens), and the interview's life.

An interview has one link per message that carried one (each invitation and reminder
mints its own); only their hashes are stored, in ``interview_links``. Whether a link
still opens anything is the lifecycle's say, read by the applicant's views: a cancelled
interview's links are not found, a finished one's show that it is over.

The life (`server.lifecycle`) is the one state; the columns that queries use (state, phase,
step, the two officers) are copies of it, written with it in one statement by `save_life`."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import aiosqlite

from common.errors import Conflict, NotFound
from common.names import Agency
from server.types import (
    AccountId,
    ApplicationId,
    ApplicationStatus,
    Clock,
    InterviewId,
    InterviewMode,
    InterviewState,
    iso,
    parse_iso,
)

from .. import interview_actions, interview_state, lifecycle
from ..application_status import status_after_invite
from ..interview_state import Life, Phase
from .applications import ApplicationStore
from .database import Database
from .events import insert_event

OPEN_STATES = (InterviewState.SCHEDULED, InterviewState.IN_PROGRESS)
_SEAT: Mapping[Agency, str] = MappingProxyType(
    {Agency.CBSA: "cbsa_officer_id", Agency.CBP: "cbp_officer_id"}
)
_ENDED_STATE: Mapping[Phase, InterviewState] = MappingProxyType(
    {
        Phase.CLOSED: InterviewState.COMPLETED,
        Phase.CANCELLED: InterviewState.CANCELLED,
        Phase.NO_SHOW: InterviewState.NO_SHOW,
        Phase.INTERRUPTED: InterviewState.INTERRUPTED,
    }
)
LIVE_PHASES = (Phase.SCHEDULED, Phase.WAITING, Phase.IN_CALL, Phase.AWAITING_DECISIONS)


def state_of(life: Life) -> InterviewState:
    """The coarse state lists and filters show: scheduled until an officer is seated."""
    ended = _ENDED_STATE.get(life.phase)
    if ended is not None:
        return ended
    if life.officers or life.phase in (Phase.IN_CALL, Phase.AWAITING_DECISIONS):
        return InterviewState.IN_PROGRESS
    return InterviewState.SCHEDULED


def _stored_life(row: sqlite3.Row) -> Life:
    """The life as stored; a row from before lives were kept starts from its columns."""
    if row["life"] is not None:
        return interview_state.decode(row["life"])
    mode = InterviewMode(row["mode"])
    officers = {a: row[column] for a, column in _SEAT.items() if row[column] is not None}
    state = InterviewState(row["state"])
    life = Life(
        mode,
        phase={
            InterviewState.COMPLETED: Phase.CLOSED,
            InterviewState.CANCELLED: Phase.CANCELLED,
        }.get(state, Phase.SCHEDULED),
        checked_in=row["dob_confirmed_at"] is not None,
        officers=MappingProxyType(officers),
        decided=frozenset(Agency) if state is InterviewState.COMPLETED else frozenset(),
    )
    return life.replace(step=life.first_step()) if officers else life


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
    life: Life
    call_ended_at: datetime | None = None

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
            life=_stored_life(row),
            call_ended_at=parse_iso(row["call_ended_at"]) if row["call_ended_at"] else None,
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
            "phase": self.life.phase,
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
        rule: Callable[[ApplicationStatus], ApplicationStatus] = status_after_invite,
    ) -> InterviewId:
        """A new interview for the application. Links of its earlier open interviews stop
        working: an operator asks for a new link when the old one is lost. ``rule``: which
        statuses the application may be in (`application_status`), checked in the same
        transaction."""
        async with self._database.transaction() as db:
            return await self.create(
                db, application_id, mode, window_start, window_end, token_hash, actor, rule
            )

    async def create(
        self,
        db: aiosqlite.Connection,
        application_id: str,
        mode: InterviewMode,
        window_start: datetime,
        window_end: datetime,
        token_hash: bytes,
        actor: str,
        rule: Callable[[ApplicationStatus], ApplicationStatus],
    ) -> InterviewId:
        """`schedule` inside the caller's transaction (a booking writes its appointment
        and messages in the same one)."""
        if window_end <= window_start:
            raise Conflict("the interview window must end after it starts")
        interview_id = InterviewId("iv_" + secrets.token_hex(8))
        now = iso(self._clock())
        await self._applications.change_status(
            db, application_id, rule, "interview scheduled", actor
        )
        rows = await db.execute_fetchall(
            "SELECT * FROM interviews WHERE application_id = ? AND phase IN (?, ?)",
            (application_id, Phase.SCHEDULED, Phase.WAITING),
        )
        for row in rows:
            await self._cancel(db, Interview.from_row(row))
        await db.execute(
            "INSERT INTO interviews (id, application_id, mode, window_start, window_end,"
            " token_hash, created_at, updated_at, life)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                interview_id,
                application_id,
                mode,
                iso(window_start),
                iso(window_end),
                token_hash,
                now,
                now,
                interview_state.encode(Life(mode)),
            ),
        )
        await db.execute(
            "INSERT INTO interview_links (token_hash, interview_id, created_at) VALUES (?, ?, ?)",
            (token_hash, interview_id, now),
        )
        return interview_id

    async def add_link(self, interview_id: str, token_hash: bytes) -> None:
        """Another link to the interview, for a message about to be sent. Refused (Conflict)
        once the interview has ended or begun: no message should invite to it then."""
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT phase FROM interviews WHERE id = ?", (interview_id,)
                )
            )
            if not rows:
                raise NotFound(f"no interview with id {interview_id!r}")
            if rows[0]["phase"] not in (Phase.SCHEDULED, Phase.WAITING):
                raise Conflict("interview {id} is no longer open to invite to", id=interview_id)
            await db.execute(
                "INSERT INTO interview_links (token_hash, interview_id, created_at)"
                " VALUES (?, ?, ?)",
                (token_hash, interview_id, iso(self._clock())),
            )

    async def _cancel(self, db: aiosqlite.Connection, earlier: Interview) -> None:
        """The earlier link stops working, unless its interview has begun."""
        try:
            outcome = lifecycle.apply(earlier.life, interview_actions.Cancel())
        except lifecycle.Refused:
            return
        await self.save_life(db, earlier.id, outcome.life)
        for event in outcome.events:
            await insert_event(db, earlier.id, self._clock().timestamp(), event, None, {})

    async def save_life(
        self, db: aiosqlite.Connection, interview_id: str, life: Life, call_ended: bool = False
    ) -> None:
        """Store ``life`` and the columns copied from it, inside the caller's transaction."""
        now = iso(self._clock())
        await db.execute(
            "UPDATE interviews SET life = ?, phase = ?, step = ?, state = ?,"
            " cbsa_officer_id = ?, cbp_officer_id = ?, updated_at = ?,"
            " call_ended_at = CASE WHEN ? THEN ? ELSE call_ended_at END WHERE id = ?",
            (
                interview_state.encode(life),
                life.phase,
                life.step,
                state_of(life),
                life.officers.get(Agency.CBSA),
                life.officers.get(Agency.CBP),
                now,
                call_ended,
                now,
                interview_id,
            ),
        )

    async def get(self, interview_id: str) -> Interview:
        interview = await self._one("SELECT * FROM interviews WHERE id = ?", (interview_id,))
        if interview is None:
            raise NotFound(f"no interview with id {interview_id!r}")
        return interview

    async def by_token_hash(self, token_hash: bytes) -> Interview | None:
        """The interview any of whose links hashes to ``token_hash``, whatever its state."""
        return await self._one(
            "SELECT i.* FROM interview_links l JOIN interviews i ON i.id = l.interview_id"
            " WHERE l.token_hash = ?",
            (token_hash,),
        )

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

    def _waiting(self, agency: Agency) -> tuple[str, tuple[str, ...]]:
        """The SQL condition (on alias ``i``) for "not begun, in its window, with
        ``agency``'s place free in the step to come"; in two-step mode the CBP step opens
        once CBSA has decided."""
        now = iso(self._clock())
        condition = (
            f"i.phase IN ('scheduled', 'waiting') AND i.{_SEAT[agency]} IS NULL"
            " AND i.window_start <= ? AND i.window_end > ?"
            " AND (i.step = 'joint' OR i.step = ?"
            " OR (i.step IS NULL AND (i.mode = 'joint' OR ? = 'CBSA')))"
        )
        return condition, (now, now, agency.value, agency.value)

    async def seated_for(self, officer_id: AccountId) -> list[Interview]:
        """Interviews not over in which ``officer_id`` holds a place, newest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM interviews WHERE phase IN (?, ?, ?, ?)"
                " AND (cbsa_officer_id = ? OR cbp_officer_id = ?) ORDER BY updated_at DESC",
                (*LIVE_PHASES, officer_id, officer_id),
            )
        return [Interview.from_row(row) for row in rows]

    async def awaiting_decisions(self, agency: Agency, ended_before: datetime) -> list[Interview]:
        """Interviews whose call ended before ``ended_before`` and that still await
        ``agency``'s decision, oldest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT * FROM interviews WHERE phase = ? AND {_SEAT[agency]} IS NOT NULL"
                " AND call_ended_at <= ? ORDER BY call_ended_at, id",
                (Phase.AWAITING_DECISIONS, iso(ended_before)),
            )
        found = [Interview.from_row(row) for row in rows]
        return [i for i in found if i.life.awaits_decision_from(agency)]

    async def in_phases(self, *phases: Phase) -> list[Interview]:
        """Every interview in one of ``phases`` (a restart's and the timers' sweeps)."""
        marks = ", ".join("?" for _ in phases)
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"SELECT * FROM interviews WHERE phase IN ({marks}) ORDER BY window_start, id",
                phases,
            )
        return [Interview.from_row(row) for row in rows]

    async def all(self, limit: int = 100, offset: int = 0) -> list[Interview]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM interviews ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
        return [Interview.from_row(row) for row in rows]
