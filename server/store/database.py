"""One SQLite connection, its write lock, and the versioned migrations applied at start."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from importlib import resources
from pathlib import Path

import aiosqlite

from common.errors import NexusError

MIGRATIONS_PACKAGE = "server.store.migrations"

log = logging.getLogger(__name__)


class StoreError(NexusError):
    """The database could not be opened or migrated."""


def migrations(package: str = MIGRATIONS_PACKAGE) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file ``NNNN_name.sql`` of ``package``, in order."""
    found = []
    for entry in resources.files(package).iterdir():
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

    def __init__(
        self, path: Path, read_only: bool = False, migrations_package: str = MIGRATIONS_PACKAGE
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.migrations_package = migrations_package
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
            _create_private(self.path)
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
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        try:
            connection.row_factory = sqlite3.Row
            for pragma in pragmas:
                await connection.execute(pragma)
        except BaseException as exc:
            await connection.close()  # its thread would keep the process alive
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
            raise
        self._connection = connection
        if not self.read_only:
            try:
                await self.migrate()
            except BaseException:
                # the connection's thread would keep the process alive after the error
                await self.close()
                raise

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
        for version, name, sql in migrations(self.migrations_package):
            if version in applied:
                continue
            # SQLite's way to change a table's constraints is to rebuild it, which foreign
            # keys pointing at it forbid while enforced; they are checked once at the end.
            await self._pragma("foreign_keys", "OFF")
            try:
                async with self.transaction() as db:
                    # another process opening the same database may have applied it since
                    # (the transaction holds the write lock: one applies, the rest see it)
                    if await db.execute_fetchall(
                        "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                    ):
                        continue
                    for statement in _statements(sql):
                        await db.execute(statement)
                    broken = list(await db.execute_fetchall("PRAGMA foreign_key_check"))
                    if broken:
                        raise StoreError(f"migration {version} breaks foreign keys: {broken[:3]}")
                    await db.execute(
                        "INSERT INTO schema_migrations"
                        " VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%SZ'))",
                        (version, name),
                    )
            finally:
                await self._pragma("foreign_keys", "ON")
            newly.append(version)
        return newly

    async def _pragma(self, name: str, value: str) -> None:
        """A pragma that takes effect only outside a transaction."""
        async with self._lock:
            if self._connection is not None:
                await self._connection.execute(f"PRAGMA {name} = {value}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error so stored data stays as it was.

        Cancellation too: aiosqlite runs each call to its end in its worker thread whatever
        becomes of the task awaiting it, so a cancelled BEGIN or statement still lands. The
        ROLLBACK queued after it (the worker keeps order) ends that transaction, and a COMMIT
        or ROLLBACK under way is waited for; only then is the lock let go and the cancellation
        passed on, so the shared connection is never handed on inside a transaction.
        """
        connection = self._connection
        if connection is None:
            raise StoreError(f"the database {self.path} is not open")
        async with self._lock:
            if connection.in_transaction:  # some use of the connection outside this method
                log.warning("rolling back a transaction left open on %s", self.path)
                await _to_the_end(connection.rollback())
            try:
                await connection.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
                yield connection
                await _to_the_end(connection.commit())
            except BaseException:
                # Without an open transaction (BEGIN failed, or COMMIT ended it) this does
                # nothing, which is what is wanted then.
                await _to_the_end(connection.rollback())
                raise

    async def close(self) -> None:
        """Safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


async def _to_the_end(operation: Awaitable[None]) -> None:
    """Await `operation` to its end even if this task is cancelled meanwhile; then pass the
    cancellation on, which wins over an error of the operation (kept as its context)."""
    finishing = asyncio.ensure_future(operation)
    cancelled: asyncio.CancelledError | None = None
    while not finishing.done():
        try:
            await asyncio.wait([finishing])
        except asyncio.CancelledError as exc:
            cancelled = exc
    try:
        finishing.result()
    finally:
        if cancelled is not None:
            raise cancelled


def _create_private(path: Path) -> None:
    """A new database and a directory made for it are readable by this user only. The file is
    made empty (a valid database) before SQLite opens it, because SQLite gives its -wal and
    -shm files the mode of the database. Existing ones are left as their owner set them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


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
