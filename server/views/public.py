"""Pages and endpoints open to everyone: home, health, staff sign-in and sign-out."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from ..appkeys import CLOCK, PASSWORDS, SETTINGS, STORE, THROTTLE
from ..auth import Principal, totp_step
from ..errors import Locked, NexusError, Unauthorized
from ..secret import Secret
from ..store.accounts import Account
from ..types import Role
from .http import client_address, csrf_token, json_ok, principal_of, read_form, session_of, sign_in

HOME_OF = {Role.OFFICER: "/officer", Role.AUDITOR: "/audit", Role.APPLICANT: "/interview"}
LOGIN_FIELDS = {"username": 64, "password": 256, "code": 12}
WRONG_CREDENTIALS = "the username, password or one-time code is wrong"


async def index(request: web.Request) -> web.StreamResponse:
    principal = await principal_of(request)
    return aiohttp_jinja2.render_template(
        "index.html", request, {"home": HOME_OF[principal.role] if principal else None}
    )


async def healthz(request: web.Request) -> web.StreamResponse:
    await request.app[STORE].applications.count()
    return json_ok({"status": "ok"})


async def session_info(request: web.Request) -> web.StreamResponse:
    """For scripts: the caller's role and the CSRF token to send with changes."""
    principal = await principal_of(request)
    return json_ok(
        {
            "role": principal.role if principal else None,
            "label": principal.label if principal else None,
            "csrf_token": await csrf_token(request),
        }
    )


async def login_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("login.html", request, {"error": None})


async def login(request: web.Request) -> web.StreamResponse:
    try:
        account = await _authenticate(request)
    except NexusError as exc:
        response = aiohttp_jinja2.render_template(
            "login.html", request, {"error": exc.message}, status=exc.status
        )
        response.headers.update(exc.headers)
        return response
    principal = Principal(role=account.role, account_id=account.id, agency=account.agency)
    await sign_in(request, principal)
    raise web.HTTPSeeOther(HOME_OF[account.role])


async def _authenticate(request: web.Request) -> Account:
    app = request.app
    settings, store, passwords = app[SETTINGS], app[STORE], app[PASSWORDS]
    client = client_address(request)
    app[THROTTLE].check(client)
    form = await read_form(request, LOGIN_FIELDS)
    password = Secret(form["password"])
    account = await store.accounts.by_username(form["username"].strip())
    log = store.access_log
    if account is None:
        passwords.verify_nothing(password)
        await log.append(f"unknown:{form['username'][:64]}", "-", "sign-in", "", "denied", client)
        raise Unauthorized(WRONG_CREDENTIALS)
    if store.accounts.is_locked(account):
        await log.append(account.label, account.role, "sign-in", "", "locked", client)
        raise Locked(
            f"this account is locked after too many wrong sign-ins until "
            f"{account.locked_until}; try again then or ask an operator"
        )
    step = totp_step(account.totp_secret, form["code"], app[CLOCK]())
    if not passwords.verify(account.password_hash, password) or step is None:
        locked = await store.accounts.record_failure(
            account.id, settings.login_max_failures, settings.login_lockout_seconds
        )
        await log.append(account.label, account.role, "sign-in", "", "denied", client)
        if locked:
            raise Locked("too many wrong sign-ins: this account is now locked for a while")
        raise Unauthorized(WRONG_CREDENTIALS)
    if not await store.accounts.record_success(account.id, step):
        await log.append(account.label, account.role, "sign-in", "", "code-reused", client)
        raise Unauthorized("that one-time code was used already; wait for the next one")
    await log.append(account.label, account.role, "sign-in", "", "allowed", client)
    return account


async def logout(request: web.Request) -> web.StreamResponse:
    (await session_of(request)).invalidate()
    raise web.HTTPSeeOther("/")
