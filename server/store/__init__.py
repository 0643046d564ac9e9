"""The application database (SQLite through aiosqlite, one module per table group) and,
beside it, the small auth database that the interview server and the audit console both
write: sessions and sign-in guards. The audit console opens the first read-only."""

from __future__ import annotations

from pathlib import Path

from ..secret_box import SecretBox
from ..settings import Settings, load_settings
from ..types import Clock, utc_now
from .access_log import AccessLog
from .accounts import AccountStore
from .applications import ApplicationStore
from .database import Database
from .decisions import DecisionStore
from .drafts import DraftStore
from .events import EventStore
from .interviews import InterviewStore
from .sessions import SessionLimits, SessionStore
from .sign_in_guards import GuardLimits, SignInGuards

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
        self.decisions = DecisionStore(database, self.applications, clock)
        self.drafts = DraftStore(database, clock)
        self.access_log = AccessLog(database, clock)
        self.events = EventStore(database)
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
        await self.database.open()
        await self.auth_database.open()
        if not self.database.read_only:
            await self.accounts.seal_totp_secrets()
        return self

    async def close(self) -> None:
        """Safe to call twice."""
        await self.auth_database.close()
        await self.database.close()


__all__ = ["Store"]
