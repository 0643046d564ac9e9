"""Server-side sessions: the cookie carries only a random id; who it belongs to, and
whether it still holds, is decided here, so a session can be ended at once (sign-out,
lock, password change, an operator's revocation) in every process that shares the store."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from common.names import Agency
from common.secret import Secret
from server.types import Clock, Role

from ..auth import Principal
from .database import Database

SESSION_ID_BYTES = 32
TOUCH_INTERVAL_SECONDS = 60
"""Activity is written at most this often per session: idle timeouts are counted in
minutes, and a write per request would only slow every page."""


@dataclass(frozen=True)
class SessionLimits:
    idle_seconds: int
    max_age_seconds: int


def session_hash(session_id: str) -> bytes:
    """What is stored of a session id: a copy of the store opens no session."""
    return hashlib.sha256(session_id.encode()).digest()


class SessionStore:
    def __init__(self, database: Database, clock: Clock, limits: SessionLimits) -> None:
        self._database = database
        self._clock = clock
        self._limits = limits

    async def start(self, principal: Principal) -> Secret[str]:
        """A new session for ``principal``; its id, for the cookie."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            await db.execute(
                "INSERT INTO sessions (id_hash, role, account_id, agency, interview_id,"
                " created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_hash(session_id),
                    principal.role.value,
                    principal.account_id,
                    principal.agency.value if principal.agency else None,
                    principal.interview_id,
                    now,
                    now,
                ),
            )
        return Secret(session_id)

    async def principal(self, session_id: str) -> Principal | None:
        """Who the session belongs to, if it still holds; counts as activity. A session
        idle or older than the limits allow is ended."""
        key = session_hash(session_id)
        now = self._clock().timestamp()
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall("SELECT * FROM sessions WHERE id_hash = ?", (key,))
            )
            if not rows:
                return None
            row = rows[0]
            if (
                now - row["created_at"] > self._limits.max_age_seconds
                or now - row["last_seen_at"] > self._limits.idle_seconds
            ):
                await db.execute("DELETE FROM sessions WHERE id_hash = ?", (key,))
                return None
            if now - row["last_seen_at"] >= TOUCH_INTERVAL_SECONDS:
                await db.execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", (now, key)
                )
        return Principal(
            role=Role(row["role"]),
            account_id=row["account_id"],
            agency=Agency(row["agency"]) if row["agency"] else None,
            interview_id=row["interview_id"],
        )

    async def end(self, session_id: str) -> list[bytes]:
        """End one session (signing out); the hashes of what was ended."""
        return await self._delete("id_hash = ?", (session_hash(session_id),))

    async def end_for_account(self, account_id: int) -> list[bytes]:
        """End every session of a staff account."""
        return await self._delete("account_id = ?", (account_id,))

    async def end_for_interview(self, interview_id: str) -> list[bytes]:
        """End every applicant session opened by an interview's link."""
        return await self._delete("interview_id = ? AND role = 'applicant'", (interview_id,))

    async def end_all(self) -> list[bytes]:
        return await self._delete("1 = 1", ())

    async def _delete(self, where: str, params: tuple[object, ...]) -> list[bytes]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                f"DELETE FROM sessions WHERE {where} RETURNING id_hash", params
            )
        return [bytes(row[0]) for row in rows]
