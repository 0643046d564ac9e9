"""Staff accounts: officers (agency, working country, availability) and auditors."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

from ..errors import Conflict, NotFound
from ..secret import Secret
from ..types import AccountId, Agency, Clock, Role, iso, parse_iso
from .database import Database


@dataclass(frozen=True)
class Account:
    id: AccountId
    username: str
    display_name: str
    role: Role
    password_hash: Secret[str]
    totp_secret: Secret[str]
    totp_last_step: int
    failed_logins: int
    locked_until: str | None
    agency: Agency | None
    country: str | None
    organisation: str | None
    available: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Account:
        return cls(
            id=AccountId(row["id"]),
            username=row["username"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            password_hash=Secret(row["password_hash"]),
            totp_secret=Secret(row["totp_secret"]),
            totp_last_step=row["totp_last_step"],
            failed_logins=row["failed_logins"],
            locked_until=row["locked_until"],
            agency=Agency(row["agency"]) if row["agency"] else None,
            country=row["country"],
            organisation=row["organisation"],
            available=bool(row["available"]),
        )

    @property
    def label(self) -> str:
        """How the account is named in logs and events: role, id, agency; never a secret."""
        suffix = f":{self.agency}" if self.agency else ""
        return f"{self.role}:{self.id}{suffix}"


_SELECT = (
    "SELECT a.*, o.agency, o.country, o.available, d.organisation FROM accounts a"
    " LEFT JOIN officers o ON o.account_id = a.id"
    " LEFT JOIN auditors d ON d.account_id = a.id"
)


class AccountStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def add_officer(
        self,
        username: str,
        display_name: str,
        agency: Agency,
        country: str,
        password_hash: str,
        totp_secret: str,
    ) -> AccountId:
        async with self._database.transaction() as db:
            account_id = await self._insert(
                db, username, display_name, Role.OFFICER, password_hash, totp_secret
            )
            await db.execute(
                "INSERT INTO officers (account_id, agency, country) VALUES (?, ?, ?)",
                (account_id, agency, country),
            )
        return account_id

    async def add_auditor(
        self,
        username: str,
        display_name: str,
        organisation: str,
        password_hash: str,
        totp_secret: str,
    ) -> AccountId:
        async with self._database.transaction() as db:
            account_id = await self._insert(
                db, username, display_name, Role.AUDITOR, password_hash, totp_secret
            )
            await db.execute(
                "INSERT INTO auditors (account_id, organisation) VALUES (?, ?)",
                (account_id, organisation),
            )
        return account_id

    async def _insert(
        self,
        db: aiosqlite.Connection,
        username: str,
        display_name: str,
        role: Role,
        password_hash: str,
        totp_secret: str,
    ) -> AccountId:
        try:
            cursor = await db.execute(
                "INSERT INTO accounts (username, display_name, role, password_hash,"
                " totp_secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (username, display_name, role, password_hash, totp_secret, iso(self._clock())),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"an account named {username!r} already exists") from None
        if cursor.lastrowid is None:
            raise Conflict(f"the account {username!r} was not stored")
        return AccountId(cursor.lastrowid)

    async def by_username(self, username: str) -> Account | None:
        return await self._one(f"{_SELECT} WHERE a.username = ?", (username,))

    async def get(self, account_id: int) -> Account:
        account = await self._one(f"{_SELECT} WHERE a.id = ?", (account_id,))
        if account is None:
            raise NotFound(f"no account with id {account_id}")
        return account

    async def officers(self) -> list[Account]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(f"{_SELECT} WHERE a.role = 'officer' ORDER BY a.id")
        return [Account.from_row(row) for row in rows]

    async def _one(self, sql: str, params: tuple[object, ...]) -> Account | None:
        async with self._database.transaction() as db:
            rows = list(await db.execute_fetchall(sql, params))
        return Account.from_row(rows[0]) if rows else None

    async def record_failure(self, account_id: int, max_failures: int, lockout: int) -> bool:
        """Count a wrong sign-in; lock the account at ``max_failures``. True if now locked."""
        now = self._clock()
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?",
                (account_id,),
            )
            rows = list(
                await db.execute_fetchall(
                    "SELECT failed_logins FROM accounts WHERE id = ?", (account_id,)
                )
            )
            if rows[0][0] < max_failures:
                return False
            await db.execute(
                "UPDATE accounts SET failed_logins = 0, locked_until = ? WHERE id = ?",
                (iso(now + timedelta(seconds=lockout)), account_id),
            )
        return True

    def is_locked(self, account: Account) -> bool:
        return account.locked_until is not None and parse_iso(account.locked_until) > self._clock()

    async def record_success(self, account_id: int, totp_step: int) -> bool:
        """Reset the failure count and burn the TOTP step; False if that step was used
        already (a replayed code), in which case nothing changes."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE accounts SET failed_logins = 0, locked_until = NULL, totp_last_step = ?"
                " WHERE id = ? AND totp_last_step < ?",
                (totp_step, account_id, totp_step),
            )
        return cursor.rowcount == 1

    async def set_available(self, account_id: int, available: bool) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE officers SET available = ? WHERE account_id = ?",
                (int(available), account_id),
            )
