"""Applications and their status history. Status changes only through `change_status`,
which asks the rule in `application_status` and writes the history row alongside."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import aiosqlite

from common.errors import NotFound

from ..types import ApplicationId, ApplicationStatus, ApplicationType, Clock, Program, iso
from .database import Database

PERSONAL_FIELDS = (
    "program",
    "application_type",
    "surname",
    "given_names",
    "date_of_birth",
    "citizenship",
    "email",
    "applied_on",
    "card_expiry",
    "language",
    "time_zone",
)
LANGUAGES = ("en", "fr")


@dataclass(frozen=True)
class Application:
    id: ApplicationId
    program: Program
    application_type: ApplicationType
    surname: str
    given_names: str
    date_of_birth: date
    citizenship: str
    email: str
    applied_on: date
    card_expiry: date | None
    status: ApplicationStatus
    language: str | None = None
    """One of LANGUAGES; None: not known (messages go in every language, pages follow the
    browser)."""
    time_zone: str | None = None
    """An IANA name; None: the operator's default (`Settings.applicant_time_zone`)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Application:
        return cls(
            id=ApplicationId(row["id"]),
            program=Program(row["program"]),
            application_type=ApplicationType(row["application_type"]),
            surname=row["surname"],
            given_names=row["given_names"],
            date_of_birth=date.fromisoformat(row["date_of_birth"]),
            citizenship=row["citizenship"],
            email=row["email"],
            applied_on=date.fromisoformat(row["applied_on"]),
            card_expiry=date.fromisoformat(row["card_expiry"]) if row["card_expiry"] else None,
            status=ApplicationStatus(row["status"]),
            language=row["language"],
            time_zone=row["time_zone"],
        )

    def public_record(self) -> dict[str, object]:
        """The record as officers see it beside the call (JSON-ready)."""
        record = dataclasses.asdict(self)
        return {
            key: value.isoformat() if isinstance(value, date) else value
            for key, value in record.items()
        }


@dataclass(frozen=True)
class StatusChange:
    from_status: ApplicationStatus | None
    to_status: ApplicationStatus
    reason: str
    actor: str
    at: str


@dataclass(frozen=True)
class ImportCounts:
    inserted: int
    updated: int
    unchanged: int


PersonalValues = tuple[str, str, str, str, str, str, str, str, str | None, str | None, str | None]
"""The stored text of PERSONAL_FIELDS, in that order, for one application."""


class ApplicationStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def get(self, application_id: str) -> Application:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM applications WHERE id = ?", (application_id,)
            )
        if not rows:
            raise NotFound(f"no application with id {application_id!r}")
        return Application.from_row(next(iter(rows)))

    async def history(self, application_id: str) -> list[StatusChange]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT from_status, to_status, reason, actor, at"
                " FROM application_status_history WHERE application_id = ? ORDER BY id",
                (application_id,),
            )
        return [
            StatusChange(ApplicationStatus(r[0]) if r[0] else None, ApplicationStatus(r[1]), *r[2:])
            for r in rows
        ]

    async def pending(self) -> list[tuple[ApplicationId, date, date | None]]:
        """Every application waiting for an interview to be scheduled, as (id, applied on,
        card expiry): what the waiting room's order needs, and no more, for a whole backlog
        at once. In no order: the caller orders them by that rule."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT id, applied_on, card_expiry FROM applications WHERE status = ?",
                (ApplicationStatus.PENDING,),
            )
        return [
            (
                ApplicationId(row[0]),
                date.fromisoformat(row[1]),
                date.fromisoformat(row[2]) if row[2] else None,
            )
            for row in rows
        ]

    async def count(self) -> int:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall("SELECT count(*) FROM applications")
        return int(next(iter(rows))[0])

    async def import_rows(
        self,
        rows: Sequence[tuple[str, PersonalValues]],
        actor: str,
        progress: Callable[[int], None] | None = None,
        batch: int = 20_000,
    ) -> ImportCounts:
        """Insert new applications and refresh the personal fields of known ones, all in
        one transaction. New ones start `pending` with a history row; statuses of known
        ones are left alone."""
        now = iso(self._clock())
        inserted = updated = 0
        async with self._database.transaction() as db:
            existing = await _existing_ids(db, [app_id for app_id, _ in rows])
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                new = [
                    (app_id, *values, now, now)
                    for app_id, values in chunk
                    if app_id not in existing
                ]
                known = [
                    (*values, now, app_id, *values)
                    for app_id, values in chunk
                    if app_id in existing
                ]
                await db.executemany(_INSERT, new)
                await db.executemany(
                    "INSERT INTO application_status_history"
                    " (application_id, from_status, to_status, reason, actor, at)"
                    " VALUES (?, NULL, 'pending', 'imported', ?, ?)",
                    [(row[0], actor, now) for row in new],
                )
                before = db.total_changes
                await db.executemany(_UPDATE_IF_CHANGED, known)
                updated += db.total_changes - before
                inserted += len(new)
                if progress:
                    progress(len(chunk))
        return ImportCounts(inserted, updated, len(rows) - inserted - updated)

    async def change_status(
        self,
        db: aiosqlite.Connection,
        application_id: str,
        decide: Callable[[ApplicationStatus], ApplicationStatus],
        reason: str,
        actor: str,
    ) -> ApplicationStatus:
        """Inside the caller's transaction: apply the rule ``decide`` to the current status
        and, if it changes, store it with its history row."""
        rows = await db.execute_fetchall(
            "SELECT status FROM applications WHERE id = ?", (application_id,)
        )
        if not rows:
            raise NotFound(f"no application with id {application_id!r}")
        current = ApplicationStatus(next(iter(rows))[0])
        new = decide(current)
        if new is not current:
            now = iso(self._clock())
            await db.execute(
                "UPDATE applications SET status = ?, updated_at = ? WHERE id = ?",
                (new, now, application_id),
            )
            await db.execute(
                "INSERT INTO application_status_history"
                " (application_id, from_status, to_status, reason, actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (application_id, current, new, reason, actor, now),
            )
        return new


_INSERT = (
    f"INSERT INTO applications (id, {', '.join(PERSONAL_FIELDS)}, created_at, updated_at)"
    f" VALUES ({', '.join('?' * (len(PERSONAL_FIELDS) + 3))})"
)
_UPDATE_IF_CHANGED = (
    f"UPDATE applications SET {', '.join(f'{f} = ?' for f in PERSONAL_FIELDS)}, updated_at = ?"
    f" WHERE id = ? AND ({', '.join(PERSONAL_FIELDS)})"
    f" IS NOT ({', '.join('?' * len(PERSONAL_FIELDS))})"
)


async def _existing_ids(db: aiosqlite.Connection, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    wanted = list(ids)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await db.execute_fetchall(
            f"SELECT id FROM applications WHERE id IN ({', '.join('?' * len(chunk))})", chunk
        )
        found.update(row[0] for row in rows)
    return found
