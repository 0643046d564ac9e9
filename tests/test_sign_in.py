"""Staff sign-in: the bounded password pool, rehashing, guards shared by both web apps,
the operator's account commands, and a revoked session that stops working at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import argon2
import pyotp
import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from common.errors import TooManyRequests
from common.names import Agency
from common.secret import Secret
from recordings.keys import Identity
from server.audit_app import create_audit_app
from server.auth import Passwords
from server.password_checks import PasswordChecks

from .fakes import Client, World, fast_passwords, nexus_interview


class HeldPasswords(Passwords):
    """Checks that wait until the test lets them finish."""

    def __init__(self) -> None:
        super().__init__(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.release = threading.Event()

    def verify(self, password_hash: Secret[str], password: Secret[str]) -> bool:
        self.release.wait(10)
        return super().verify(password_hash, password)


async def test_checks_beyond_the_pending_limit_are_told_when_to_retry() -> None:
    passwords = HeldPasswords()
    checks = PasswordChecks(passwords, max_pending=2)
    stored = Secret(passwords.hash(Secret("correct horse battery")))
    try:
        waiting = [
            asyncio.ensure_future(checks.check(stored, Secret("correct horse battery")))
            for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(TooManyRequests) as refused:
            await checks.check(stored, Secret("correct horse battery"))
        assert int(refused.value.headers["Retry-After"]) > 0
        passwords.release.set()
        assert all(check.matches for check in await asyncio.gather(*waiting))
        assert checks.pending == 0
        assert (await checks.check(stored, Secret("wrong horse battery"))).matches is False
    finally:
        passwords.release.set()
        checks.close()


async def test_a_cancelled_caller_keeps_its_place_until_the_check_is_done() -> None:
    passwords = HeldPasswords()
    checks = PasswordChecks(passwords, max_pending=1)
    stored = Secret(passwords.hash(Secret("correct horse battery")))
    try:
        first = asyncio.ensure_future(checks.check(stored, Secret("correct horse battery")))
        await asyncio.sleep(0.05)
        first.cancel()
        await asyncio.sleep(0.05)
        with pytest.raises(TooManyRequests):  # the thread is still hashing for it
            await checks.check(stored, Secret("correct horse battery"))
        passwords.release.set()
        for _ in range(100):
            if checks.pending == 0:
                break
            await asyncio.sleep(0.02)
        assert (await checks.check(stored, Secret("correct horse battery"))).matches
    finally:
        passwords.release.set()
        checks.close()


async def test_new_passwords_are_hashed_on_one_lane() -> None:
    stored = Passwords().hash(Secret("correct horse battery"))
    assert ",p=1$" in stored


async def test_a_password_hashed_on_four_lanes_is_rehashed_at_sign_in(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    account = await world.store.accounts.by_username("cbsa.one")
    assert account is not None
    four_lanes = argon2.PasswordHasher(time_cost=1, memory_cost=32, parallelism=4)
    await world.store.accounts.set_password_hash(
        account.id, four_lanes.hash(officer.password.reveal())
    )
    assert (await world.sign_in(await world.client(), officer)).status == 303
    rehashed = await world.store.accounts.by_username("cbsa.one")
    assert rehashed is not None and ",p=1$" in rehashed.password_hash.reveal()
    assert (await world.sign_in(await world.client(), officer)).status == 303


async def test_unknown_and_locked_names_get_the_same_answers_as_real_ones(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    csrf = await world.csrf(client)

    async def statuses(username: str) -> list[int]:
        seen = []
        for _ in range(world.settings.login_max_failures + 1):
            form = {"csrf_token": csrf, "username": username, "password": "x" * 12, "code": "1"}
            seen.append((await client.post("/login", data=form)).status)
        return seen

    assert await statuses(officer.username) == await statuses("nobody.at.all")
    assert (await statuses("nobody.at.all"))[-1] == 423


@pytest.fixture
async def console(world: World, tmp_path: Path) -> AsyncIterator[TestServer]:
    """An audit console beside the interview server, on the same data directory."""
    app = create_audit_app(
        world.settings.replace(audit_dir=tmp_path / "audit-console"),
        [Identity.generate()],
        [],
        clock=world.clock,
        passwords=fast_passwords(),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def _console_client(world: World, console: TestServer) -> tuple[Client, str]:
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(console.make_url("/"))])
    client: Client = TestClient(console, cookie_jar=jar)
    await client.start_server()
    world.clients.append(client)
    page = await (await client.get("/login")).text()
    return client, page.split('name="csrf-token" content="')[1].split('"')[0]


async def test_a_code_used_at_the_audit_console_cannot_sign_in_to_the_interview_server(
    world: World, console: TestServer
) -> None:
    auditor = await world.add_auditor("auditor.one")
    code = pyotp.TOTP(auditor.totp_secret.reveal()).at(world.clock())
    at_console, csrf = await _console_client(world, console)
    assert (await world.sign_in(at_console, auditor, code=code, csrf=csrf)).status == 303
    world.clock.advance(-30)  # the same 30-second step
    again = await world.sign_in(await world.client(), auditor, code=code)
    assert again.status == 401
    assert "was used already" in await again.text()


async def test_failures_at_either_app_count_toward_one_lock(
    world: World, console: TestServer
) -> None:
    auditor = await world.add_auditor("auditor.one")
    at_console, csrf = await _console_client(world, console)
    here = await world.client()
    for n in range(world.settings.login_max_failures):
        if n % 2:
            await world.sign_in(here, auditor, code="000000")
        else:
            await world.sign_in(at_console, auditor, code="000000", csrf=csrf)
    assert (await world.sign_in(here, auditor)).status == 423
    fresh, csrf = await _console_client(world, console)
    assert (await world.sign_in(fresh, auditor, csrf=csrf)).status == 423


def _cli(world: World, *args: str, stdin: str = "") -> str:
    done = nexus_interview(*args, "--data-dir", str(world.settings.data_dir), stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_operator_commands_unlock_reset_disable_and_revoke(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    for _ in range(world.settings.login_max_failures):
        await world.sign_in(await world.client(), officer, code="000000")
    assert (await world.sign_in(await world.client(), officer)).status == 423
    assert "unlocked cbsa.one" in _cli(world, "officers", "unlock", "cbsa.one")

    browser = await world.client()
    assert (await world.sign_in(browser, officer)).status == 303
    assert "1 session(s) ended" in _cli(world, "sessions", "revoke", "--user", "cbsa.one")
    assert (await browser.get("/officer", allow_redirects=False)).status == 303

    assert (await world.sign_in(browser, officer)).status == 303
    _cli(
        world,
        "officers",
        "reset-password",
        "cbsa.one",
        "--password-stdin",
        stdin="a-brand-new-password\n",
    )
    assert (await browser.get("/officer", allow_redirects=False)).status == 303
    assert (await world.sign_in(browser, officer)).status == 401  # the old password
    officer.password = Secret("a-brand-new-password")
    assert (await world.sign_in(browser, officer)).status == 303

    assert "1 session(s) ended" in _cli(world, "officers", "disable", "cbsa.one")
    assert (await browser.get("/officer", allow_redirects=False)).status == 303
    assert (await world.sign_in(browser, officer)).status == 401
    _cli(world, "officers", "enable", "cbsa.one")
    assert (await world.sign_in(browser, officer)).status == 303

    printed = _cli(world, "officers", "reset-totp", "cbsa.one")
    assert "otpauth://" in printed
    assert (await browser.get("/officer", allow_redirects=False)).status == 303
    assert (await world.sign_in(browser, officer)).status == 401  # the old app's code

    auditor = await world.add_auditor("auditor.one")
    assert (await world.sign_in(browser, auditor)).status == 303
    assert "1 session(s) ended" in _cli(world, "sessions", "revoke", "--all")
    assert (await browser.get("/audit", allow_redirects=False)).status == 303


async def test_operator_commands_name_what_is_missing(world: World) -> None:
    done = nexus_interview(
        "auditors", "unlock", "nobody", "--data-dir", str(world.settings.data_dir)
    )
    assert done.returncode == 1 and "there is no auditor named 'nobody'" in done.stderr
