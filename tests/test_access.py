"""Signing in and staying safe, through the real server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sqlite3

import pyotp
import pytest

from common.names import Agency
from server.middleware import SECURITY_HEADERS

from .fakes import (
    World,
    add_applications,
    application,
    error_message,
    session_cookie_attributes,
)


async def test_officer_signs_in_with_password_and_code_and_gets_a_hardened_cookie(
    world: World,
) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    response = await world.sign_in(client, officer)
    assert response.status == 303
    assert response.headers["Location"] == "/officer"
    attributes = session_cookie_attributes(response)
    assert {"httponly", "secure"} <= set(attributes)
    assert attributes["samesite"] == "Strict"
    cookie = response.cookies["nexus_session"].value
    assert "officer" not in cookie and "cbsa" not in cookie  # the cookie is encrypted
    assert (await client.get("/officer")).status == 200


@pytest.mark.parametrize("wrong", ["password", "code"])
async def test_a_wrong_password_or_code_is_refused_alike(world: World, wrong: str) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    if wrong == "password":
        officer.password = type(officer.password)("not-the-password")
    client = await world.client()
    response = await world.sign_in(client, officer, code="000000" if wrong == "code" else None)
    assert response.status == 401
    assert "username, password or one-time code is wrong" in await response.text()
    assert (await client.get("/officer", allow_redirects=False)).status == 303


async def test_a_used_code_cannot_be_replayed(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    code = world.clock.now
    first = pyotp.TOTP(officer.totp_secret.reveal()).at(code)
    assert (await world.sign_in(client, officer, code=first)).status == 303
    world.clock.now = code  # same 30 s step, same code
    again = await world.sign_in(await world.client(), officer, code=first)
    assert again.status == 401
    assert "was used already" in await again.text()


async def test_repeated_failures_lock_the_account_until_the_lockout_ends(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    statuses = [(await world.sign_in(client, officer, code="000000")).status for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    locked = await world.sign_in(client, officer)  # even the right credentials
    assert locked.status == 423
    assert "locked" in await locked.text()
    world.clock.advance(world.settings.login_lockout_seconds)
    assert (await world.sign_in(client, officer)).status == 303


async def test_sign_in_attempts_are_rate_limited_per_address(world: World) -> None:
    client = await world.client()
    csrf = await world.csrf(client)
    statuses = []
    for n in range(world.settings.login_attempts_per_minute + 2):
        form = {"csrf_token": csrf, "username": f"nobody{n}", "password": "x" * 12, "code": "1"}
        statuses.append((await client.post("/login", data=form)).status)
    assert statuses[-3:] == [401, 429, 429]
    response = await client.post("/login", data=form)
    assert int(response.headers["Retry-After"]) > 0


async def test_every_sign_in_attempt_is_in_the_access_log(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer, code="000000")
    await world.sign_in(client, officer)
    outcomes = [e.outcome for e in await world.store.access_log.entries() if e.action == "sign-in"]
    assert outcomes == ["allowed", "denied"]  # newest first


async def test_state_changes_need_the_csrf_token(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        response = await client.post(
            "/api/officer/availability", json={"available": True}, headers=headers
        )
        assert response.status == 403
        assert "reload the page" in error_message(await response.json())
    account = await world.store.accounts.by_username("cbsa.one")
    assert account is not None and not account.available
    good = await client.post(
        "/api/officer/availability",
        json={"available": True},
        headers={"X-CSRF-Token": await world.csrf(client)},
    )
    assert good.status == 200


async def test_the_login_form_itself_needs_the_csrf_token(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    response = await client.post(
        "/login",
        data={
            "username": officer.username,
            "password": officer.password.reveal(),
            "code": "123456",
        },
    )
    assert response.status == 403


@pytest.mark.parametrize(
    "path",
    ["/", "/login", "/api/session", "/static/app.css", "/nowhere", "/api/nowhere", "/officer"],
)
async def test_security_headers_on_every_response(world: World, path: str) -> None:
    client = await world.client()
    response = await client.get(path, allow_redirects=False)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp


async def test_pages_carry_no_inline_script_or_style(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    staff, applicant = await world.client(), await world.client()
    await world.sign_in(staff, officer)
    invitation = await (await applicant.get(f"/i/{token}")).text()
    await world.confirm_dob(applicant, token, "1980-05-17")
    pages = [await (await staff.get(path)).text() for path in ("/", "/login", "/officer")]
    pages += [invitation, await (await applicant.get("/interview")).text()]
    for html in pages:
        assert "<style" not in html and "style=" not in html
        assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
        for tag in re.findall(r"<script\b[^>]*>", html):
            if 'type="application/json"' in tag:
                continue  # a data block (the page's messages): never executed
            assert 'src="/static/' in tag, f"inline or foreign script: {tag}"
        data = re.search(r'<script type="application/json" id="messages">(.*?)</script>', html)
        assert data is not None
        json.loads(data.group(1))  # data only, and valid


async def test_applicant_link_opens_after_the_date_of_birth(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    interview_id, token = await world.invite("NX-0001")
    client = await world.client()
    assert (await client.get(f"/i/{token}")).status == 200
    assert (await client.get("/interview")).status == 401
    response = await world.confirm_dob(client, token, "1980-05-17")
    assert response.status == 303 and response.headers["Location"] == "/interview"
    assert interview_id in await (await client.get("/interview")).text()


async def test_five_wrong_dates_of_birth_lock_the_link(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    client = await world.client()
    statuses = []
    for _ in range(5):
        statuses.append((await world.confirm_dob(client, token, "1999-01-01")).status)
    assert statuses == [400, 400, 400, 400, 423]
    right = await world.confirm_dob(client, token, "1980-05-17")
    assert right.status == 423
    assert (await client.get(f"/i/{token}")).status == 423
    assert (await client.get("/interview")).status == 401


async def test_the_link_expires_when_the_window_closes(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001", hours=1)
    client = await world.client()
    world.clock.advance(3600)
    response = await client.get(f"/i/{token}")
    assert response.status == 410
    assert "expired" in await response.text()


async def test_a_replaced_link_stops_working_even_for_a_confirmed_applicant(
    world: World,
) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    client = await world.client()
    await world.confirm_dob(client, token, "1980-05-17")
    await world.invite("NX-0001")
    assert (await client.get(f"/i/{token}")).status == 404
    assert (await client.get("/api/applicant/interview")).status == 410


@pytest.mark.parametrize("token", ["short", "A" * 43, "A" * 200])
async def test_unknown_or_malformed_tokens_are_not_found(world: World, token: str) -> None:
    client = await world.client()
    assert (await client.get(f"/i/{token}")).status == 404


async def test_only_the_token_hash_is_stored(world: World) -> None:
    await add_applications(world.store, application("NX-0001"))
    _, token = await world.invite("NX-0001")
    raw = world.settings.database_path.read_bytes()
    wal = world.settings.database_path.with_name("nexus.sqlite3-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw
    with sqlite3.connect(world.settings.database_path) as db:
        [(stored,)] = db.execute("SELECT token_hash FROM interviews").fetchall()
    assert len(stored) == 32


async def test_a_sign_in_lasts_no_longer_than_its_max_age_even_when_active(
    world: World,
) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    for _ in range(world.settings.session_max_age // 600 - 1):
        world.clock.advance(600)  # active every ten minutes
        assert (await client.get("/officer", allow_redirects=False)).status == 200
    world.clock.advance(600)  # past the max age
    assert (await client.get("/officer", allow_redirects=False)).status == 303


async def test_an_idle_sign_in_ends_after_the_idle_timeout(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    world.clock.advance(world.settings.session_idle_seconds - 60)
    assert (await client.get("/officer", allow_redirects=False)).status == 200
    world.clock.advance(world.settings.session_idle_seconds + 1)
    assert (await client.get("/officer", allow_redirects=False)).status == 303


async def test_signing_out_ends_the_session_for_a_replayed_cookie_too(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    stolen = await world.session_of(client)
    replay = await world.client(stolen)
    assert (await replay.get("/officer", allow_redirects=False)).status == 200
    csrf = await world.csrf(client)
    assert (
        await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    ).status == 303
    assert (await replay.get("/officer", allow_redirects=False)).status == 303
    write = await replay.post("/api/officer/availability", json={"available": True})
    assert write.status == 401


async def test_signing_in_again_rotates_the_session_id(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    client = await world.client()
    await world.sign_in(client, officer)
    before = await world.session_of(client)
    await world.sign_in(client, officer)
    old = await world.client(before)
    assert (await old.get("/officer", allow_redirects=False)).status == 303
    assert (await client.get("/officer", allow_redirects=False)).status == 200


async def test_a_lock_ends_every_session_of_the_account(world: World) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    signed_in = await world.client()
    await world.sign_in(signed_in, officer)
    guesser = await world.client()
    for _ in range(world.settings.login_max_failures):
        await world.sign_in(guesser, officer, code="000000")
    assert (await signed_in.get("/officer", allow_redirects=False)).status == 303


async def test_auditors_cannot_change_anything(world: World) -> None:
    auditor = await world.add_auditor("auditor.one")
    client = await world.client()
    await world.sign_in(client, auditor)
    csrf = await world.csrf(client)
    response = await client.post(
        "/api/officer/availability", json={"available": True}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 403
    assert (await client.get("/api/audit/interviews")).status == 200


@pytest.mark.parametrize(
    "code", ["\u00b2" * 6, "\u0661\u0662\u0663\u0664\u0665\u0666", "12345\uff16"]
)
async def test_a_code_of_non_ascii_digits_is_a_wrong_code(world: World, code: str) -> None:
    officer = await world.add_officer("cbsa.one", Agency.CBSA)
    response = await world.sign_in(await world.client(), officer, code=code)
    assert response.status == 401
