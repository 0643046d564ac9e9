"""Pages and endpoints open to everyone: home, health, staff sign-in and sign-out."""

from __future__ import annotations

import aiohttp_jinja2
import msgspec
from aiohttp import web

from ..appkeys import CATALOGS, CLOCK, PASSWORDS, SETTINGS, STORE, THROTTLE
from ..auth import Principal, totp_step
from ..errors import BadRequest, Locked, NexusError, Unauthorized
from ..i18n import LANGUAGES, SESSION_LANGUAGE
from ..secret import Secret
from ..store.accounts import Account
from ..types import Role
from .http import (
    client_address,
    csrf_token,
    json_ok,
    principal_of,
    read_form,
    read_json,
    session_of,
    sign_in,
    translator_of,
)

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


async def refused_login(request: web.Request, exc: NexusError) -> web.StreamResponse:
    """The sign-in form again, with why it failed in the page's language."""
    translate = await translator_of(request)
    response = aiohttp_jinja2.render_template(
        "login.html", request, {"error": translate.error(exc)}, status=exc.status
    )
    response.headers.update(exc.headers)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    try:
        account = await _authenticate(request)
    except NexusError as exc:
        return await refused_login(request, exc)
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
            "this account is locked until {until} after too many wrong sign-ins",
            until=account.locked_until,
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


class LanguageBody(msgspec.Struct, forbid_unknown_fields=True):
    language: str


def _safe_next(target: str) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise BadRequest("choose one of these languages: {choices}", choices=", ".join(LANGUAGES))
    return language


async def choose_language(request: web.Request) -> web.StreamResponse:
    """The language buttons' form: switch the session's language, then back to ``next``."""
    form = await read_form(request, {"language": 8, "next": 2000}, optional=frozenset({"next"}))
    (await session_of(request))[SESSION_LANGUAGE] = _check_language(form["language"])
    raise web.HTTPSeeOther(_safe_next(form.get("next", "/")))


async def switch_language(request: web.Request) -> web.StreamResponse:
    """For pages switching in place (mid-call): the new language's messages."""
    language = _check_language((await read_json(request, LanguageBody)).language)
    (await session_of(request))[SESSION_LANGUAGE] = language
    messages = request.app[CATALOGS].translator(language).messages
    return json_ok({"language": language, "messages": messages})


async def logout(request: web.Request) -> web.StreamResponse:
    (await session_of(request)).invalidate()
    raise web.HTTPSeeOther("/")
