"""Database: a transaction cancelled at any await point leaves the one shared connection outside
any transaction, its writes committed whole or not at all; a new database is its owner's only."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path

import aiosqlite
import pytest

from server.store.database import Database

WAIT = 10.0  # seconds a test waits for a step that takes milliseconds when all is well
# Enough for a task wrongly let go at once to finish first, short enough for many runs.
HOLD = 0.05
# Rows enough that counting them keeps SQLite busy for a moment in aiosqlite's thread.
SLOW_STATEMENT = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
    " SELECT count(*) FROM n"
)


class Gate:
    """The SQL function ``gate()``: it holds aiosqlite's worker thread until opened, so the
    statement that calls it, and whatever is queued behind it (a COMMIT, a ROLLBACK), stays in
    flight while the test cancels the task waiting for it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> int:
        self.entered.set()
        if not self.opened.wait(WAIT):
            raise TimeoutError("the gate was never opened")
        return 1

    async def reached(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, WAIT), "no statement reached the gate"

    def open_soon(self) -> None:
        """Open once a task wrongly let go at its cancellation would have finished already."""
        asyncio.get_running_loop().call_later(HOLD, self.opened.set)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = Database(tmp_path / "data" / "nexus.sqlite3")
    await opened.open()
    async with opened.transaction() as db:
        await db.execute("CREATE TABLE probe (batch INTEGER NOT NULL, part INTEGER NOT NULL)")
    yield opened
    await opened.close()


async def _connection(database: Database) -> aiosqlite.Connection:
    async with database.transaction() as db:
        return db


async def _gate(database: Database) -> Gate:
    gate = Gate()
    async with database.transaction() as db:
        await db.create_function("gate", 0, gate)
    return gate


async def _parts(database: Database, batch: int) -> int:
    async with database.transaction() as db:
        rows = list(
            await db.execute_fetchall("SELECT count(*) FROM probe WHERE batch = ?", (batch,))
        )
    return int(rows[0][0])


async def _assert_still_works(database: Database) -> None:
    """Outside any transaction, and the next transaction commits to the file."""
    connection = await _connection(database)
    assert not connection.in_transaction
    async with database.transaction() as db:
        await db.execute("INSERT INTO probe VALUES (-1, 1)")
    assert not connection.in_transaction
    with sqlite3.connect(database.path) as reader:
        (count,) = reader.execute("SELECT count(*) FROM probe WHERE batch = -1").fetchone()
    assert count >= 1


async def test_a_transaction_cancelled_while_begin_waits_for_the_write_lock_is_ended(
    database: Database,
) -> None:
    other = sqlite3.connect(database.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # our BEGIN IMMEDIATE now waits in SQLite's busy handler

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (1, 1)")

    task = asyncio.create_task(write())
    await asyncio.sleep(HOLD)
    task.cancel()
    await asyncio.sleep(HOLD)
    other.execute("COMMIT")  # lets the BEGIN succeed in the worker thread, after the cancel
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (await _connection(database)).in_transaction
    assert await _parts(database, 1) == 0
    await _assert_still_works(database)


async def test_a_transaction_cancelled_while_waiting_for_the_lock_never_begins(
    database: Database,
) -> None:
    gate = await _gate(database)

    async def write(batch: int) -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (?, 1)", (batch,))
            await db.execute("SELECT gate()")
            await db.execute("INSERT INTO probe VALUES (?, 2)", (batch,))

    holder = asyncio.create_task(write(1))
    await gate.reached()
    waiter = asyncio.create_task(write(2))
    await asyncio.sleep(0)
    waiter.cancel()
    gate.open_soon()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await holder
    assert await _parts(database, 1) == 2
    assert await _parts(database, 2) == 0
    await _assert_still_works(database)


async def test_a_transaction_cancelled_after_begin_is_rolled_back(database: Database) -> None:
    written = asyncio.Event()

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (1, 1)")
            written.set()
            await asyncio.sleep(WAIT)
            await db.execute("INSERT INTO probe VALUES (1, 2)")

    task = asyncio.create_task(write())
    await written.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (await _connection(database)).in_transaction
    assert await _parts(database, 1) == 0
    await _assert_still_works(database)


async def test_a_transaction_cancelled_during_a_statement_is_rolled_back_before_it_returns(
    database: Database,
) -> None:
    gate = await _gate(database)
    connection = await _connection(database)

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (1, 1)")
            await db.execute("SELECT gate()")
            await db.execute("INSERT INTO probe VALUES (1, 2)")

    task = asyncio.create_task(write())
    await gate.reached()
    task.cancel()
    gate.open_soon()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not connection.in_transaction
    assert await _parts(database, 1) == 0
    await _assert_still_works(database)


async def test_a_transaction_cancelled_during_commit_commits_whole_then_is_cancelled(
    database: Database,
) -> None:
    gate = await _gate(database)
    connection = await _connection(database)
    leaving = asyncio.Event()

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (1, 1)")
            await db.execute("INSERT INTO probe VALUES (1, 2)")
            # Occupy the worker thread so that the COMMIT waits in its queue, in flight.
            held = asyncio.ensure_future(db.execute("SELECT gate()"))
            await gate.reached()
            leaving.set()
        await held

    task = asyncio.create_task(write())
    await leaving.wait()
    await asyncio.sleep(HOLD)  # the COMMIT is queued
    task.cancel()
    gate.open_soon()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not connection.in_transaction  # the commit had finished when the cancel came out
    with sqlite3.connect(database.path) as reader:
        (count,) = reader.execute("SELECT count(*) FROM probe WHERE batch = 1").fetchone()
    assert count == 2
    await _assert_still_works(database)


async def test_a_transaction_cancelled_during_its_rollback_ends_before_the_cancel_comes_out(
    database: Database,
) -> None:
    gate = await _gate(database)
    connection = await _connection(database)
    failing = asyncio.Event()
    held = []

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (1, 1)")
            # Occupy the worker thread so that the ROLLBACK waits in its queue, in flight.
            held.append(asyncio.ensure_future(db.execute("SELECT gate()")))
            await gate.reached()
            failing.set()
            raise ValueError("the body failed")

    task = asyncio.create_task(write())
    await failing.wait()
    await asyncio.sleep(HOLD)  # the ROLLBACK is queued
    task.cancel()
    gate.open_soon()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not connection.in_transaction
    await held[0]
    assert await _parts(database, 1) == 0
    await _assert_still_works(database)


async def test_transactions_cancelled_at_any_moment_commit_whole_or_not_at_all(
    database: Database,
) -> None:
    connection = await _connection(database)

    async def write(batch: int, fail: bool) -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO probe VALUES (?, 1)", (batch,))
            await db.execute(SLOW_STATEMENT)
            await db.execute("INSERT INTO probe VALUES (?, 2)", (batch,))
            if fail:
                raise ValueError("the body failed")

    whole = 0.0
    for _ in range(3):
        started = time.perf_counter()
        await write(0, fail=False)
        whole = max(whole, time.perf_counter() - started)
    chance = random.Random(7)
    batches = range(1, 151)
    for batch in batches:
        # From before BEGIN to past COMMIT: every await point gets its turn.
        with suppress(TimeoutError, ValueError):
            await asyncio.wait_for(write(batch, fail=batch % 4 == 0), chance.uniform(0, 3 * whole))
        assert not connection.in_transaction, f"batch {batch} left a transaction open"
    parts = {batch: await _parts(database, batch) for batch in batches}
    assert set(parts.values()) == {0, 2}  # some cancelled, some committed, none half-way
    assert all(parts[batch] == 0 for batch in batches if batch % 4 == 0)
    await _assert_still_works(database)


async def test_a_transaction_left_open_outside_transaction_is_rolled_back_not_joined(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await _connection(database)
    await connection.execute("BEGIN")
    await connection.execute("INSERT INTO probe VALUES (1, 1)")
    async with database.transaction() as db:
        await db.execute("INSERT INTO probe VALUES (2, 1)")
    assert await _parts(database, 1) == 0
    assert await _parts(database, 2) == 1
    assert "left open" in caplog.text


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022, under which a file left to the umask comes out readable by all."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
async def test_a_new_database_and_its_directory_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "nexus.sqlite3"
    database = Database(path)
    await database.open()
    try:
        async with database.transaction() as db:
            await db.execute("CREATE TABLE probe (batch INTEGER)")
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode)
            for p in (path.parent, path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        }
    finally:
        await database.close()
    assert modes == {
        "data": 0o700,
        "nexus.sqlite3": 0o600,
        "nexus.sqlite3-wal": 0o600,
        "nexus.sqlite3-shm": 0o600,
    }


OPEN_AT_ONCE = """
import asyncio, sys, time
from pathlib import Path
from server.store import Store

Path(sys.argv[3]).touch()  # imported: ready
barrier_file = Path(sys.argv[2])
while not barrier_file.exists():  # every process is ready before any opens
    time.sleep(0.005)

async def main() -> None:
    store = await Store(Path(sys.argv[1])).open()
    await store.close()

asyncio.run(main())
"""


@pytest.mark.timeout(300)  # eighteen Python processes start, on a machine maybe busy
def test_processes_opening_a_new_data_directory_at_once_all_open_it(tmp_path: Path) -> None:
    # The CLI and the server may start together on a new data directory: each migration
    # is applied once, and each key made once, whoever comes first.
    for attempt in range(3):
        data = tmp_path / f"data-{attempt}"
        go = tmp_path / f"go-{attempt}"
        ready = [tmp_path / f"ready-{attempt}-{n}" for n in range(6)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AT_ONCE, str(data / "nexus.sqlite3"), str(go), str(r)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for r in ready
        ]
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, [err for _, err in results]
        versions = sqlite3.connect(data / "nexus.sqlite3").execute(
            "SELECT version, count(*) FROM schema_migrations GROUP BY version"
        )
        assert all(count == 1 for _, count in versions)


def test_a_database_that_will_not_open_is_an_error_and_the_process_ends(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "nexus.sqlite3").write_bytes(b"this is not a database" * 100)
    script = (
        "import asyncio, sys; from pathlib import Path; from server.store import Store; "
        "asyncio.run(Store(Path(sys.argv[1])).open())"
    )

    done = subprocess.run(
        [sys.executable, "-c", script, str(data / "nexus.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,  # a connection left open would keep the process alive: this would expire
    )

    assert done.returncode == 1
    assert "StoreError: cannot open the database" in done.stderr
