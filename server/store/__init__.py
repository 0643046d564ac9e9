"""The application database (SQLite through aiosqlite, one module per table group) and,
beside it, the small auth database that the interview server and the audit console both
write: sessions and sign-in guards. The audit console opens the first read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ..secret_box import SecretBox
from ..settings import Settings, load_settings
from ..types import Clock, utc_now
from .access_log import AccessLog
from .accounts import AccountStore
from .applications import ApplicationStore
from .backlog import BacklogStore
from .bookings import BookingStore
from .database import Database
from .decisions import DecisionStore
from .drafts import DraftStore
from .events import EventStore
from .interviews import InterviewStore
from .invitations import InvitationStore
from .record_checks import RecordCheckStore
from .retention import RetentionStore
from .rosters import RosterStore
from .sessions import SessionLimits, SessionStore
from .sign_in_guards import GuardLimits, SignInGuards

T = TypeVar("T")

AUTH_MIGRATIONS_PACKAGE = "server.store.auth_migrations"
AUTH_DATABASE_NAME = "auth.sqlite3"
SECRETS_KEY_NAME = "secrets.key"


class Store:
    def __init__(
        self,
        path: Path,
        clock: Clock = utc_now,
        read_only: bool = False,
        settings: Settings | None = None,
    ) -> None:
        """``path``: the application database; the auth database and the key that seals
        TOTP secrets lie beside it (outside the database file). Limits come from
        ``settings`` (their declared defaults if none)."""
        settings = settings or load_settings({})
        database = Database(path, read_only)
        self.database = database
        self.auth_database = Database(
            path.with_name(AUTH_DATABASE_NAME), migrations_package=AUTH_MIGRATIONS_PACKAGE
        )
        box = SecretBox.at(path.with_name(SECRETS_KEY_NAME), create=not read_only)
        self.applications = ApplicationStore(database, clock)
        self.accounts = AccountStore(database, clock, box)
        self.interviews = InterviewStore(database, self.applications, clock)
        self.invitations = InvitationStore(database, clock)
        self.decisions = DecisionStore(database, self.applications, clock)
        self.drafts = DraftStore(database, clock)
        self.access_log = AccessLog(database, clock)
        self.events = EventStore(database)
        # The console's counts scan the whole backlog: on a connection of their own
        # (read-only; SQLite's WAL lets it read while the other writes), an interview's
        # writes never wait for them.
        self.reports = Database(path, read_only=True)
        self.backlog = BacklogStore(self.reports)
        self.retention = RetentionStore(database, clock)
        self.record_checks = RecordCheckStore(database, clock)
        self.rosters = RosterStore(database, clock)
        self.bookings = BookingStore(database, self.rosters, self.interviews, self.invitations)
        self.sessions = SessionStore(
            self.auth_database,
            clock,
            SessionLimits(settings.session_idle_seconds, settings.session_max_age),
        )
        self.guards = SignInGuards(
            self.auth_database,
            clock,
            GuardLimits(settings.login_max_failures, settings.login_lockout_seconds),
        )

    async def open(self) -> Store:
        """Open both databases; on any failure, close what was opened (an open connection's
        thread would keep the process alive after the error)."""
        try:
            await self.database.open()
            await self.reports.open()
            await self.auth_database.open()
            if not self.database.read_only:
                await self.accounts.seal_totp_secrets()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Safe to call twice."""
        await self.auth_database.close()
        await self.reports.close()
        await self.database.close()


async def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store of ``settings``, do ``work`` with it, close it: a command's lifetime."""
    store = await Store(settings.database_path, settings=settings).open()
    try:
        return await work(store)
    finally:
        await store.close()


__all__ = ["Store", "with_store"]
