"""Staff sign-in, the one place that decides it for both web apps: password and one-time
code, checked in the bounded password pool, under the per-username guard.

Every refusal an outsider can provoke looks and takes the same: an unknown name, a
disabled account and a wrong password each cost one password check and say the same
thing; unknown names lock after as many tries as real ones. Only someone who knows the
password learns more (a reused code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from common.errors import Locked, NexusError, TooManyRequests, Unauthorized
from common.secret import Secret

from .auth import totp_step
from .password_checks import PasswordChecks
from .store import Store
from .store.accounts import Account
from .types import Clock, Role, iso

WRONG_CREDENTIALS = "the username, password or one-time code is wrong"


class Outcome(StrEnum):
    """How an attempt ended, as the access logs record it."""

    ALLOWED = "allowed"
    DENIED = "denied"
    LOCKED = "locked"
    CODE_REUSED = "code-reused"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Attempt:
    actor: str
    """The account's label, or ``unknown:<name>``: never a secret."""
    role: str
    outcome: Outcome
    account: Account | None = None
    error: NexusError | None = None
    ended_sessions: tuple[bytes, ...] = ()
    """Sessions this attempt ended (its failure locked the account)."""


class StaffSignIn:
    def __init__(
        self, store: Store, checks: PasswordChecks, clock: Clock, roles: frozenset[Role]
    ) -> None:
        self._store = store
        self._checks = checks
        self._clock = clock
        self._roles = roles
        self.failures = 0
        """Attempts refused since the server started (for the metrics)."""
        self.lockouts = 0
        """Accounts locked by a failure since the server started."""

    async def attempt(self, username: str, password: Secret[str], code: str) -> Attempt:
        name = username.strip()[:64]
        guards = self._store.guards
        locked_until = await guards.begin(name)
        try:
            account = await self._store.accounts.by_username(name)
            if locked_until is not None:
                await self._checks.check_nothing(password)
                return self._refused(name, account, Outcome.LOCKED, _locked(locked_until))
            if account is None or account.role not in self._roles or account.disabled:
                await self._checks.check_nothing(password)
                outcome = Outcome.DISABLED if account and account.disabled else Outcome.DENIED
                return await self._failed(name, account, outcome)
            check = await self._checks.check(account.password_hash, password)
        except TooManyRequests:
            await guards.release(name)  # nothing was compared: not a failure
            raise
        step = totp_step(account.totp_secret, code, self._clock())
        if not check.matches or step is None:
            return await self._failed(name, account, Outcome.DENIED)
        if not await guards.succeeded(name, step):
            locked_until = await guards.locked_until(name)
            if locked_until is not None:
                return self._refused(name, account, Outcome.LOCKED, _locked(locked_until))
            reused = Unauthorized("that one-time code was used already; wait for the next one")
            return self._refused(name, account, Outcome.CODE_REUSED, reused)
        if check.rehashed is not None and not self._store.database.read_only:
            await self._store.accounts.set_password_hash(account.id, check.rehashed)
        return Attempt(account.label, account.role, Outcome.ALLOWED, account)

    async def _failed(self, name: str, account: Account | None, outcome: Outcome) -> Attempt:
        locked_until = await self._store.guards.failed(name)
        if locked_until is None:
            return self._refused(name, account, outcome, Unauthorized(WRONG_CREDENTIALS))
        self.lockouts += 1
        ended: list[bytes] = []
        if account is not None:  # whoever is guessing may hold the password: sign it out
            ended = await self._store.sessions.end_for_account(account.id)
        return self._refused(name, account, outcome, _locked(locked_until), tuple(ended))

    def _refused(
        self,
        name: str,
        account: Account | None,
        outcome: Outcome,
        error: NexusError,
        ended: tuple[bytes, ...] = (),
    ) -> Attempt:
        self.failures += 1
        if account is None:
            return Attempt(f"unknown:{name}", "-", outcome, None, error, ended)
        return Attempt(account.label, account.role, outcome, account, error, ended)


def _locked(until: float) -> Locked:
    return Locked(
        "this account is locked until {until}; an operator can unlock it sooner",
        until=iso(datetime.fromtimestamp(until, UTC)),
    )
