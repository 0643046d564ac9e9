"""What the operator does from the CLI: import applications, add staff and keep their
accounts safe (unlock, reset, disable, end sessions), issue invitations.

Each function takes an open `Store` and returns what the CLI prints; none prints itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from common.errors import BadRequest, NotFound
from common.names import Agency
from common.secret import Secret
from server.types import AccountId, InterviewId, InterviewMode, Role, utc_now

from .auth import Passwords, new_invitation_token, new_totp_secret, token_hash, totp_uri
from .importer import read_applications
from .invitations import queue_invitation
from .settings import Settings
from .store import Store
from .store.accounts import Account
from .store.applications import ImportCounts

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Enrolment:
    account_id: AccountId
    username: str
    totp_secret: Secret[str]

    @property
    def otpauth_uri(self) -> str:
        return totp_uri(self.totp_secret, self.username)


@dataclass(frozen=True)
class Invitation:
    interview_id: InterviewId
    link: Secret[str]
    window_start: datetime
    window_end: datetime
    emailed: bool = False
    """An invitation e-mail was queued (with a link of its own); `serve` sends it."""

    def started_in_the_past(self, now: datetime) -> bool:
        """The window is open but began before ``now`` (minutes of slack aside: `invite`
        without --starts begins now)."""
        return self.window_start < now - timedelta(minutes=1)


async def import_applications(
    store: Store, path: Path, progress: Callable[[int, int], None] | None = None
) -> ImportCounts:
    """Validate the whole file first; store it only if every row is good. ``progress``
    hears (rows just stored, total rows), starting with (0, total) once validated."""
    rows = read_applications(path)
    if progress:
        progress(0, len(rows))
    stored = (lambda count: progress(count, len(rows))) if progress else None
    return await store.applications.import_rows(rows, actor="operator:import", progress=stored)


def _check_staff(username: str, display_name: str) -> tuple[str, str]:
    username = username.strip().lower()
    if not _USERNAME.fullmatch(username):
        raise BadRequest(
            "a username is 3-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    display_name = display_name.strip()
    if not 1 <= len(display_name) <= 100:
        raise BadRequest("a display name is 1-100 characters")
    return username, display_name


async def add_officer(
    store: Store,
    passwords: Passwords,
    username: str,
    display_name: str,
    agency: Agency,
    country: str | None,
    password: Secret[str],
) -> Enrolment:
    username, display_name = _check_staff(username, display_name)
    country = (country or agency.home_country).upper()
    if not _COUNTRY.fullmatch(country):
        raise BadRequest("the country is a two-letter ISO 3166 code such as CA or US")
    secret = new_totp_secret()
    account_id = await store.accounts.add_officer(
        username, display_name, agency, country, passwords.hash(password), secret
    )
    return Enrolment(account_id, username, secret)


async def add_auditor(
    store: Store,
    passwords: Passwords,
    username: str,
    display_name: str,
    organisation: str,
    password: Secret[str],
) -> Enrolment:
    username, display_name = _check_staff(username, display_name)
    if not 1 <= len(organisation.strip()) <= 100:
        raise BadRequest("an organisation is 1-100 characters")
    secret = new_totp_secret()
    account_id = await store.accounts.add_auditor(
        username, display_name, organisation.strip(), passwords.hash(password), secret
    )
    return Enrolment(account_id, username, secret)


async def add_operator(
    store: Store, passwords: Passwords, username: str, display_name: str, password: Secret[str]
) -> Enrolment:
    username, display_name = _check_staff(username, display_name)
    secret = new_totp_secret()
    account_id = await store.accounts.add_operator(
        username, display_name, passwords.hash(password), secret
    )
    return Enrolment(account_id, username, secret)


async def invite(
    store: Store,
    settings: Settings,
    application_id: str,
    mode: InterviewMode,
    starts: datetime,
    hours: int | None = None,
) -> Invitation:
    """Schedule an interview and make its link; only the token's hash is stored. A window
    that has already ended is refused (its link could never be used); one that started in
    the past but is still open is accepted (see `Invitation.started_in_the_past`). When
    e-mail is configured, the applicant's invitation e-mail is queued too."""
    if starts.tzinfo is None:
        raise BadRequest("give the start time with its time zone, e.g. 2026-12-01T14:00Z")
    ends = starts + timedelta(hours=hours or settings.invite_window_hours)
    now = utc_now()
    if ends <= now:
        raise BadRequest(
            f"that window ended at {ends:%Y-%m-%d %H:%M %Z}, before now"
            f" ({now:%Y-%m-%d %H:%M %Z}): give a later --starts, or leave it out to start now"
        )
    await store.applications.get(application_id)  # a clear 'no application' first
    token = new_invitation_token()
    interview_id = await store.interviews.schedule(
        application_id, mode, starts, ends, token_hash(token.reveal()), actor="operator:invite"
    )
    emailed = await queue_invitation(store, settings, interview_id)
    return Invitation(
        interview_id, Secret(f"{settings.public_url}/i/{token.reveal()}"), starts, ends, emailed
    )


# --- keeping staff accounts safe ---------------------------------------------------------


async def staff_account(store: Store, username: str, role: Role) -> Account:
    """The ``role`` account named ``username``, or NotFound saying so."""
    account = await store.accounts.by_username(username.strip())
    if account is None or account.role is not role:
        raise NotFound(f"there is no {role} named {username.strip()!r}")
    return account


async def unlock(store: Store, username: str, role: Role) -> bool:
    """Lift a sign-in lock early; True if the account was locked."""
    account = await staff_account(store, username, role)
    return await store.guards.unlock(account.username)


async def reset_password(
    store: Store, passwords: Passwords, username: str, role: Role, password: Secret[str]
) -> int:
    """A new password; every session of the account ends. How many ended."""
    account = await staff_account(store, username, role)
    await store.accounts.set_password_hash(account.id, passwords.hash(password))
    return len(await store.sessions.end_for_account(account.id))


async def reset_totp(store: Store, username: str, role: Role) -> Enrolment:
    """A new one-time-code secret (the old app stops working); every session ends."""
    account = await staff_account(store, username, role)
    secret = new_totp_secret()
    await store.accounts.set_totp_secret(account, secret)
    await store.sessions.end_for_account(account.id)
    return Enrolment(account.id, account.username, secret)


async def set_disabled(store: Store, username: str, role: Role, disabled: bool) -> int:
    """Disable (every session ends, no sign-in) or enable an account; sessions ended."""
    account = await staff_account(store, username, role)
    await store.accounts.set_disabled(account.id, disabled)
    return len(await store.sessions.end_for_account(account.id)) if disabled else 0


async def revoke_sessions(
    store: Store,
    username: str | None = None,
    interview_id: str | None = None,
    everyone: bool = False,
) -> int:
    """End the sessions of one staff account, of one interview's applicant, or all."""
    if sum((username is not None, interview_id is not None, everyone)) != 1:
        raise BadRequest("name exactly one of: a username, an interview, or all sessions")
    if username is not None:
        account = await store.accounts.by_username(username.strip())
        if account is None:
            raise NotFound(f"there is no account named {username.strip()!r}")
        return len(await store.sessions.end_for_account(account.id))
    if interview_id is not None:
        await store.interviews.get(interview_id)
        return len(await store.sessions.end_for_interview(interview_id))
    return len(await store.sessions.end_all())
