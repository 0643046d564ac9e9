"""Per-username sign-in guards: failures in a row, the lock they lead to, and the last
one-time-code step used (so a code signs in once, whichever process sees it).

An attempt is counted as a failure *before* its secret is compared, in one transaction
with the lock check: however many guesses arrive at once, no more than ``max_failures``
are ever compared before the name locks. A success then clears the count; a lock ends only
when it expires or an operator lifts it. Unknown usernames are guarded the same way, so
that neither the answers nor the lock tell which names exist.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from ..types import Clock
from .database import Database

FORGET_AFTER_SECONDS = 24 * 3600
"""Guards untouched this long (and not locked) are forgotten: a name tried once stays
in the table no longer than a day."""


@dataclass(frozen=True)
class GuardLimits:
    max_failures: int
    lockout_seconds: int


class SignInGuards:
    def __init__(self, database: Database, clock: Clock, limits: GuardLimits) -> None:
        self._database = database
        self._clock = clock
        self._limits = limits

    async def begin(self, username: str) -> float | None:
        """Count an attempt for ``username`` before anything is compared. None: it may go
        on; else the time (epoch seconds) the name's lock ends, and nothing is compared."""
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            row = await self._row(db, username)
            if row is None:
                await db.execute(
                    "DELETE FROM sign_in_guards WHERE updated_at < ?"
                    " AND (locked_until IS NULL OR locked_until < ?)",
                    (now - FORGET_AFTER_SECONDS, now),
                )
                await db.execute(
                    "INSERT INTO sign_in_guards (username, updated_at) VALUES (?, ?)",
                    (username, now),
                )
                failures, locked_until = 0, None
            else:
                failures, locked_until = row["failures"], row["locked_until"]
            if locked_until is not None and locked_until > now:
                return float(locked_until)
            if locked_until is not None:  # the lock has expired: a fresh start
                failures, locked_until = 0, None
            if failures >= self._limits.max_failures:
                # As many attempts as allowed are still being checked: this one is beyond.
                locked_until = now + self._limits.lockout_seconds
                await self._write(db, username, failures, locked_until, now)
                return locked_until
            await self._write(db, username, failures + 1, None, now)
        return None

    async def failed(self, username: str) -> float | None:
        """The attempt `begin` counted was wrong: lock the name once ``max_failures`` are
        counted. The time its lock ends, if it is locked."""
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            row = await self._row(db, username)
            if row is None:
                return None
            if row["locked_until"] is not None and row["locked_until"] > now:
                return float(row["locked_until"])
            if row["failures"] < self._limits.max_failures:
                return None
            locked_until = now + self._limits.lockout_seconds
            await self._write(db, username, row["failures"], locked_until, now)
        return locked_until

    async def succeeded(self, username: str, totp_step: int) -> bool:
        """Burn the code's step and clear the failures. False, changing nothing, if the step
        was used already or the name was locked meanwhile (a lock is never cleared here)."""
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE sign_in_guards SET failures = 0, totp_step = ?, updated_at = ?"
                " WHERE username = ? AND totp_step < ?"
                " AND (locked_until IS NULL OR locked_until <= ?)",
                (totp_step, now, username, totp_step, now),
            )
        return cursor.rowcount == 1

    async def release(self, username: str) -> None:
        """Take back the count of an attempt `begin` let through but nothing compared."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE sign_in_guards SET failures = max(failures - 1, 0) WHERE username = ?",
                (username,),
            )

    async def locked_until(self, username: str) -> float | None:
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            row = await self._row(db, username)
        if row is None or row["locked_until"] is None or row["locked_until"] <= now:
            return None
        return float(row["locked_until"])

    async def unlock(self, username: str) -> bool:
        """An operator lifts a lock (and the failures counted). True if it was locked."""
        was_locked = await self.locked_until(username) is not None
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE sign_in_guards SET failures = 0, locked_until = NULL, updated_at = ?"
                " WHERE username = ?",
                (self._clock().timestamp(), username),
            )
        return was_locked

    @staticmethod
    async def _row(db: aiosqlite.Connection, username: str) -> sqlite3.Row | None:
        rows = list(
            await db.execute_fetchall(
                "SELECT * FROM sign_in_guards WHERE username = ?", (username,)
            )
        )
        return rows[0] if rows else None

    @staticmethod
    async def _write(
        db: aiosqlite.Connection,
        username: str,
        failures: int,
        locked_until: float | None,
        now: float,
    ) -> None:
        await db.execute(
            "UPDATE sign_in_guards SET failures = ?, locked_until = ?, updated_at = ?"
            " WHERE username = ?",
            (failures, locked_until, now, username),
        )
