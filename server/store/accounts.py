"""Staff accounts: officers (agency, working country, availability), auditors and
operators."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from common.errors import Conflict, NotFound
from common.names import Agency
from common.secret import Secret
from server.types import AccountId, Clock, Role, iso

from ..secret_box import SecretBox, is_sealed
from .database import Database


@dataclass(frozen=True)
class Account:
    id: AccountId
    username: str
    display_name: str
    role: Role
    password_hash: Secret[str]
    totp_secret: Secret[str]
    disabled: bool
    agency: Agency | None
    country: str | None
    organisation: str | None
    available: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row, box: SecretBox) -> Account:
        return cls(
            id=AccountId(row["id"]),
            username=row["username"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            password_hash=Secret(row["password_hash"]),
            totp_secret=box.open(row["totp_secret"], _totp_context(row["username"])),
            disabled=row["disabled_at"] is not None,
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


def _totp_context(username: str) -> str:
    return f"totp-secret:{username.lower()}"


_SELECT = (
    "SELECT a.*, o.agency, o.country, o.available, d.organisation FROM accounts a"
    " LEFT JOIN officers o ON o.account_id = a.id"
    " LEFT JOIN auditors d ON d.account_id = a.id"
)


class AccountStore:
    def __init__(self, database: Database, clock: Clock, box: SecretBox) -> None:
        self._database = database
        self._clock = clock
        self._box = box

    async def add_officer(
        self,
        username: str,
        display_name: str,
        agency: Agency,
        country: str,
        password_hash: str,
        totp_secret: Secret[str],
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
        totp_secret: Secret[str],
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

    async def add_operator(
        self, username: str, display_name: str, password_hash: str, totp_secret: Secret[str]
    ) -> AccountId:
        async with self._database.transaction() as db:
            return await self._insert(
                db, username, display_name, Role.OPERATOR, password_hash, totp_secret
            )

    async def _insert(
        self,
        db: aiosqlite.Connection,
        username: str,
        display_name: str,
        role: Role,
        password_hash: str,
        totp_secret: Secret[str],
    ) -> AccountId:
        sealed = self._box.seal(totp_secret, _totp_context(username))
        try:
            cursor = await db.execute(
                "INSERT INTO accounts (username, display_name, role, password_hash,"
                " totp_secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (username, display_name, role, password_hash, sealed, iso(self._clock())),
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
        return [Account.from_row(row, self._box) for row in rows]

    async def _one(self, sql: str, params: tuple[object, ...]) -> Account | None:
        async with self._database.transaction() as db:
            rows = list(await db.execute_fetchall(sql, params))
        return Account.from_row(rows[0], self._box) if rows else None

    async def set_password_hash(self, account_id: int, password_hash: str) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
            )

    async def set_totp_secret(self, account: Account, totp_secret: Secret[str]) -> None:
        sealed = self._box.seal(totp_secret, _totp_context(account.username))
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE accounts SET totp_secret = ? WHERE id = ?", (sealed, account.id)
            )

    async def set_disabled(self, account_id: int, disabled: bool) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE accounts SET disabled_at = ? WHERE id = ?",
                (iso(self._clock()) if disabled else None, account_id),
            )
            if disabled:
                await db.execute(
                    "UPDATE officers SET available = 0 WHERE account_id = ?", (account_id,)
                )

    async def seal_totp_secrets(self) -> int:
        """Seal the TOTP secrets stored in clear before sealing existed; how many."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall("SELECT id, username, totp_secret FROM accounts")
            unsealed = [row for row in rows if not is_sealed(row["totp_secret"])]
            for row in unsealed:
                sealed = self._box.seal(Secret(row["totp_secret"]), _totp_context(row["username"]))
                await db.execute(
                    "UPDATE accounts SET totp_secret = ? WHERE id = ?", (sealed, row["id"])
                )
        return len(unsealed)

    async def set_available(self, account_id: int, available: bool) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE officers SET available = ? WHERE account_id = ?",
                (int(available), account_id),
            )
