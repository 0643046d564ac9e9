"""Credentials: argon2id passwords, TOTP codes with replay protection, sign-in throttling,
and applicant invitation tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import argon2
import pyotp

from common.errors import BadRequest, Forbidden, TooManyRequests
from common.names import Agency
from common.secret import Secret
from server.rate_limits import SlidingWindow
from server.types import AccountId, Clock, InterviewId, Role

MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "NEXUS interview"
INVITATION_TOKEN_BYTES = 32  # 256 bits


def default_hasher() -> argon2.PasswordHasher:
    """argon2id with the library's recommended memory and time costs, on one lane: a hash
    with argon2-cffi's default of four lanes fills four cores while it runs."""
    return argon2.PasswordHasher(parallelism=1)


class Passwords:
    """Hashes and verifies passwords (synchronously: the server goes through
    `server.password_checks.PasswordChecks`, never calling these on its event loop)."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or default_hasher()
        self._dummy = Secret(self._hasher.hash(secrets.token_urlsafe(16)))

    def hash(self, password: Secret[str]) -> str:
        value = password.reveal()
        if len(value) < MIN_PASSWORD_LENGTH:
            raise BadRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        return self._hasher.hash(value)

    def verify(self, password_hash: Secret[str], password: Secret[str]) -> bool:
        try:
            return self._hasher.verify(password_hash.reveal(), password.reveal())
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: Secret[str]) -> bool:
        """True for a hash made with other parameters than today's (rehash at sign-in)."""
        try:
            return self._hasher.check_needs_rehash(password_hash.reveal())
        except argon2.exceptions.InvalidHashError:
            return True

    def verify_nothing(self, password: Secret[str]) -> None:
        """Spend the time a real check takes, so unknown usernames cannot be told apart."""
        self.verify(self._dummy, password)


def new_totp_secret() -> Secret[str]:
    return Secret(pyotp.random_base32())


def totp_uri(secret: Secret[str], username: str) -> str:
    return pyotp.TOTP(secret.reveal()).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_step(secret: Secret[str], code: str, now: datetime) -> int | None:
    """The 30-second step the code belongs to (now, or one step either side for clock
    drift), or None if it matches none."""
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret.reveal())
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_invitation_token() -> Secret[str]:
    return Secret(secrets.token_urlsafe(INVITATION_TOKEN_BYTES))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, as its server-side session records it."""

    role: Role
    account_id: AccountId | None = None
    agency: Agency | None = None
    interview_id: InterviewId | None = None

    def officer_seat(self) -> tuple[AccountId, Agency]:
        """The officer's account and agency; Forbidden for anyone else."""
        if self.role is not Role.OFFICER or self.account_id is None or self.agency is None:
            raise Forbidden("only officers may do this")
        return self.account_id, self.agency

    def own_interview(self) -> InterviewId:
        """The one interview an applicant's session opens; Forbidden for anyone else."""
        if self.role is not Role.APPLICANT or self.interview_id is None:
            raise Forbidden("only the invited applicant may do this")
        return self.interview_id

    @property
    def label(self) -> str:
        if self.role is Role.APPLICANT:
            return f"applicant:{self.interview_id}"
        suffix = f":{self.agency}" if self.agency else ""
        return f"{self.role}:{self.account_id}{suffix}"


class LoginThrottle:
    """At most ``per_minute`` sign-in attempts per client address in any 60 seconds."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self._attempts = SlidingWindow(per_minute, 60, clock)

    def check(self, client: str) -> None:
        retry = self._attempts.take(client)
        if retry is not None:
            raise TooManyRequests(
                f"too many sign-in attempts from this address; try again in {retry} s", retry
            )
