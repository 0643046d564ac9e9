"""One SQLite connection, its write lock, and the versioned migrations applied at start."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

from ..errors import NexusError

MIGRATIONS_PACKAGE = "server.store.migrations"


class StoreError(NexusError):
    """The database could not be opened or migrated."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file ``NNNN_name.sql``, in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return found


class Database:
    """Every statement goes through `transaction()` so concurrent requests never interleave."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._connection: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect and bring the schema up to date (read-only: connect only; SQLite itself
        refuses every write)."""
        if self.read_only:
            if not self.path.is_file():
                raise StoreError(f"there is no database at {self.path}")
            target = self.path.resolve().as_uri() + "?mode=ro"
            pragmas: tuple[str, ...] = ("PRAGMA busy_timeout = 5000",)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, pragmas = (
                str(self.path),
                (
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA busy_timeout = 5000",
                ),
            )
        try:
            connection = await aiosqlite.connect(target, isolation_level=None, uri=self.read_only)
            connection.row_factory = sqlite3.Row
            for pragma in pragmas:
                await connection.execute(pragma)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        self._connection = connection
        if not self.read_only:
            await self.migrate()

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied, each in its own transaction."""
        async with self.transaction() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            rows = await db.execute_fetchall("SELECT version FROM schema_migrations")
        applied = {row[0] for row in rows}
        newly = []
        for version, name, sql in migrations():
            if version in applied:
                continue
            async with self.transaction() as db:
                for statement in _statements(sql):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%SZ'))",
                    (version, name),
                )
            newly.append(version)
        return newly

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error so stored data stays as it was."""
        connection = self._connection
        if connection is None:
            raise StoreError(f"the database {self.path} is not open")
        async with self._lock:
            await connection.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                await connection.execute("ROLLBACK")
                raise
            await connection.execute("COMMIT")

    async def close(self) -> None:
        """Safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows the grammar)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        raise StoreError(f"incomplete statement at the end of a migration: {current[:60]!r}")
    return statements
