"""Officers' roster windows, the appointments booked into them and the slots each holds.

Every write that takes an officer's time checks, inside its transaction, that the time is
still free: the database's single writer makes check and write one step, so two runs of
`schedule` (or an applicant moving their appointment meanwhile) never hold one officer's
slot twice. Held time counts until its interview is cancelled. An appointment is written
with its interview, in one transaction (`store.bookings`); one left without an interview
by an older version's run cut short keeps holding its time."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from common.errors import Conflict, ImportRejected, NexusError, NotFound
from common.names import Agency

from ..interview_state import Phase
from ..scheduling import Appointment, Hold, RosterWindow
from ..types import Clock, InterviewMode, iso, parse_iso
from .database import Database
from .events import insert_event

_LIVE_HOLDS = (
    "SELECT h.* FROM slot_holds h JOIN appointments a ON a.id = h.appointment_id"
    " LEFT JOIN interviews i ON i.id = a.interview_id"
    " WHERE (i.id IS NULL OR i.phase != 'cancelled')"
)


@dataclass(frozen=True)
class StoredWindow:
    id: int
    officer_id: int
    username: str
    agency: Agency
    starts: datetime
    ends: datetime

    def window(self) -> RosterWindow:
        return RosterWindow(self.officer_id, self.agency, self.starts, self.ends)


@dataclass(frozen=True)
class StoredAppointment:
    id: str
    application_id: str
    interview_id: str | None
    mode: InterviewMode
    starts: datetime
    ends: datetime
    origin: str
    reschedules: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredAppointment:
        return cls(
            row["id"],
            row["application_id"],
            row["interview_id"],
            InterviewMode(row["mode"]),
            parse_iso(row["starts_at"]),
            parse_iso(row["ends_at"]),
            row["origin"],
            row["reschedules"],
        )


def _hold(row: sqlite3.Row) -> Hold:
    return Hold(
        row["officer_id"],
        Agency(row["agency"]),
        parse_iso(row["starts_at"]),
        parse_iso(row["ends_at"]),
    )


async def _taken(db: aiosqlite.Connection, holds: tuple[Hold, ...], besides: str = "") -> bool:
    """Some of ``holds`` overlap time already held (other than appointment ``besides``'s)."""
    for hold in holds:
        rows = await db.execute_fetchall(
            f"{_LIVE_HOLDS} AND h.officer_id = ? AND h.starts_at < ? AND h.ends_at > ?"
            " AND h.appointment_id != ? LIMIT 1",
            (hold.officer_id, iso(hold.ends), iso(hold.starts), besides),
        )
        if list(rows):
            return True
    return False


async def _insert_holds(
    db: aiosqlite.Connection, appointment_id: str, holds: tuple[Hold, ...]
) -> None:
    await db.executemany(
        "INSERT INTO slot_holds (appointment_id, officer_id, agency, starts_at, ends_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(appointment_id, h.officer_id, h.agency, iso(h.starts), iso(h.ends)) for h in holds],
    )


class RosterStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    # --- roster windows -------------------------------------------------------------------

    async def add_window(
        self, officer_id: int, starts: datetime, ends: datetime
    ) -> tuple[int, bool]:
        """Store a window (its id, True), or find the same one stored already (its id,
        False). Refused: an end not after the start, or an overlap with another window of
        the same officer."""
        async with self._database.transaction() as db:
            return await self._add_window(db, officer_id, starts, ends)

    async def add_windows(
        self, windows: Sequence[tuple[int, int, datetime, datetime]]
    ) -> tuple[int, int]:
        """(line, officer, starts, ends) of a roster file: all of them in one transaction
        (how many were new, how many stored already), or none, refused with each line that
        overlaps a stored window (`ImportRejected`)."""
        added = 0
        problems: list[tuple[int, str]] = []
        async with self._database.transaction() as db:
            for line, officer_id, starts, ends in windows:
                try:
                    _, new = await self._add_window(db, officer_id, starts, ends)
                except NexusError as exc:
                    problems.append((line, exc.message))
                    continue
                added += new
            if problems:
                raise ImportRejected(problems)  # rolls back the windows added before
        return added, len(windows) - added

    async def _add_window(
        self, db: aiosqlite.Connection, officer_id: int, starts: datetime, ends: datetime
    ) -> tuple[int, bool]:
        if ends <= starts:
            raise Conflict("a roster window must end after it starts")
        rows = list(
            await db.execute_fetchall(
                "SELECT id, starts_at, ends_at FROM roster_windows"
                " WHERE officer_id = ? AND starts_at < ? AND ends_at > ? ORDER BY starts_at",
                (officer_id, iso(ends), iso(starts)),
            )
        )
        for row in rows:
            if (row["starts_at"], row["ends_at"]) == (iso(starts), iso(ends)):
                return int(row["id"]), False
        if rows:
            raise Conflict(
                "this window overlaps the officer's window {id} ({starts} to {ends}); "
                "remove that one first or give times that do not overlap",
                id=rows[0]["id"],
                starts=rows[0]["starts_at"],
                ends=rows[0]["ends_at"],
            )
        cursor = await db.execute(
            "INSERT INTO roster_windows (officer_id, starts_at, ends_at, created_at)"
            " VALUES (?, ?, ?, ?)",
            (officer_id, iso(starts), iso(ends), iso(self._clock())),
        )
        return int(cursor.lastrowid or 0), True

    async def windows(
        self, starts: datetime, ends: datetime, officer_id: int | None = None
    ) -> list[StoredWindow]:
        """Windows overlapping ``starts``..``ends`` (of one officer if given), by start."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT w.id, w.officer_id, a.username, o.agency, w.starts_at, w.ends_at"
                " FROM roster_windows w JOIN officers o ON o.account_id = w.officer_id"
                " JOIN accounts a ON a.id = w.officer_id"
                " WHERE w.starts_at < ? AND w.ends_at > ? AND (? IS NULL OR w.officer_id = ?)"
                " ORDER BY w.starts_at, w.officer_id",
                (iso(ends), iso(starts), officer_id, officer_id),
            )
        return [
            StoredWindow(
                r[0], r[1], r[2], Agency(r[3]), parse_iso(r["starts_at"]), parse_iso(r["ends_at"])
            )
            for r in rows
        ]

    async def remove_window(self, window_id: int) -> None:
        """Refused while an appointment holds time in it: its officer is counted on."""
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT officer_id, starts_at, ends_at FROM roster_windows WHERE id = ?",
                    (window_id,),
                )
            )
            if not rows:
                raise NotFound(f"there is no roster window {window_id}")
            officer_id, starts, ends = rows[0]
            held = list(
                await db.execute_fetchall(
                    f"SELECT count(*) FROM ({_LIVE_HOLDS} AND h.officer_id = ?"
                    " AND h.starts_at < ? AND h.ends_at > ?)",
                    (officer_id, ends, starts),
                )
            )
            if held[0][0]:
                raise Conflict(
                    "{count} appointment(s) hold time in window {id}; it cannot be removed "
                    "while they are booked",
                    count=held[0][0],
                    id=window_id,
                )
            await db.execute("DELETE FROM roster_windows WHERE id = ?", (window_id,))

    # --- held time and appointments ---------------------------------------------------------

    async def holds(self, starts: datetime, ends: datetime, besides: str = "") -> list[Hold]:
        """Time held between ``starts`` and ``ends`` by appointments still counting (other
        than appointment ``besides``, being moved)."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"{_LIVE_HOLDS} AND h.starts_at < ? AND h.ends_at > ? AND h.appointment_id != ?",
                (iso(ends), iso(starts), besides),
            )
        return [_hold(row) for row in rows]

    async def taken(self, db: aiosqlite.Connection, holds: tuple[Hold, ...]) -> bool:
        """Inside the caller's transaction: some of ``holds`` overlap time already held."""
        return await _taken(db, holds)

    async def add_appointment(
        self, db: aiosqlite.Connection, appointment: Appointment, origin: str, interview_id: str
    ) -> str:
        """Inside the caller's transaction (which checked the time free): store the
        appointment of ``interview_id`` and hold its slots; its new id."""
        appointment_id = "ap_" + secrets.token_hex(8)
        await db.execute(
            "INSERT INTO appointments (id, application_id, interview_id, mode, starts_at,"
            " ends_at, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                appointment_id,
                appointment.application_id,
                interview_id,
                appointment.mode,
                iso(appointment.starts),
                iso(appointment.ends),
                origin,
                iso(self._clock()),
            ),
        )
        await _insert_holds(db, appointment_id, appointment.holds)
        return appointment_id

    async def appointment_of(self, interview_id: str) -> StoredAppointment | None:
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT * FROM appointments WHERE interview_id = ?", (interview_id,)
                )
            )
        return StoredAppointment.from_row(rows[0]) if rows else None

    async def move_in(
        self, db: aiosqlite.Connection, current: StoredAppointment, to: Appointment
    ) -> bool:
        """Inside the caller's transaction: move a booked appointment (and its interview's
        window) to ``to``'s slots, if they are free and nothing moved it since ``current``
        was read; False, with nothing written, otherwise. The interview must not have
        begun (Conflict)."""
        if await _taken(db, to.holds, besides=current.id):
            return False
        cursor = await db.execute(
            "UPDATE appointments SET starts_at = ?, ends_at = ?, reschedules = reschedules + 1"
            " WHERE id = ? AND reschedules = ? AND starts_at = ?",
            (
                iso(to.starts),
                iso(to.ends),
                current.id,
                current.reschedules,
                iso(current.starts),
            ),
        )
        if cursor.rowcount != 1:
            return False
        await db.execute("DELETE FROM slot_holds WHERE appointment_id = ?", (current.id,))
        await _insert_holds(db, current.id, to.holds)
        window_end = await self._window_end(db, current, to)
        cursor = await db.execute(
            "UPDATE interviews SET window_start = ?, window_end = ?, updated_at = ?"
            " WHERE id = ? AND phase = ?",
            (
                iso(to.starts),
                window_end,
                iso(self._clock()),
                current.interview_id,
                Phase.SCHEDULED,
            ),
        )
        if cursor.rowcount != 1:
            raise Conflict("this interview has begun; it can no longer be moved")
        await insert_event(
            db,
            current.interview_id or "",
            self._clock().timestamp(),
            "rescheduled",
            "applicant",
            {"from": iso(current.starts), "to": iso(to.starts)},
        )
        return True

    @staticmethod
    async def _window_end(
        db: aiosqlite.Connection, current: StoredAppointment, to: Appointment
    ) -> str:
        """The moved window keeps the grace the old one had after its appointment."""
        rows = list(
            await db.execute_fetchall(
                "SELECT window_end FROM interviews WHERE id = ?", (current.interview_id,)
            )
        )
        if not rows:
            raise NotFound(f"no interview with id {current.interview_id!r}")
        grace = parse_iso(rows[0][0]) - current.ends
        return iso(to.ends + grace)

    # --- the no-show rule's bookkeeping -----------------------------------------------------

    async def unfollowed_no_shows(self) -> list[tuple[str, str, InterviewMode]]:
        """Missed interviews the no-show rule has not dealt with: (interview, application,
        mode), oldest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT i.id, i.application_id, i.mode FROM interviews i"
                " LEFT JOIN no_show_follow_ups f ON f.interview_id = i.id"
                " WHERE i.phase = ? AND f.interview_id IS NULL ORDER BY i.window_start, i.id",
                (Phase.NO_SHOW,),
            )
        return [(r[0], r[1], InterviewMode(r[2])) for r in rows]

    async def follow_up(self, db: aiosqlite.Connection, interview_id: str, outcome: str) -> bool:
        """Inside the transaction that acts on the missed interview: record what the rule
        did; False if it was recorded already (then the caller does nothing)."""
        cursor = await db.execute(
            "INSERT OR IGNORE INTO no_show_follow_ups (interview_id, outcome, at) VALUES (?, ?, ?)",
            (interview_id, outcome, iso(self._clock())),
        )
        return cursor.rowcount == 1

    async def re_invites(self, application_id: str) -> int:
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT count(*) FROM appointments WHERE application_id = ?"
                    " AND origin = 're_invite'",
                    (application_id,),
                )
            )
        return int(rows[0][0])
