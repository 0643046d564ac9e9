"""The application database: SQLite through aiosqlite, one module per table group."""

from __future__ import annotations

from pathlib import Path

from ..types import Clock, utc_now
from .access_log import AccessLog
from .accounts import AccountStore
from .applications import ApplicationStore
from .database import Database
from .decisions import DecisionStore
from .events import EventStore
from .interviews import InterviewStore


class Store:
    def __init__(self, path: Path, clock: Clock = utc_now, read_only: bool = False) -> None:
        database = Database(path, read_only)
        self.database = database
        self.applications = ApplicationStore(database, clock)
        self.accounts = AccountStore(database, clock)
        self.interviews = InterviewStore(database, self.applications, clock)
        self.decisions = DecisionStore(database, self.applications, clock)
        self.access_log = AccessLog(database, clock)
        self.events = EventStore(database)

    async def open(self) -> Store:
        await self.database.open()
        return self

    async def close(self) -> None:
        await self.database.close()


__all__ = ["Store"]
