"""Pages and endpoints open to everyone: home, health, staff sign-in and sign-out."""

from __future__ import annotations

import aiohttp_jinja2
import msgspec
from aiohttp import web
from yarl import URL

from common.errors import BadRequest, NexusError, Unauthorized
from common.secret import Secret

from ..appkeys import CATALOGS, SIGN_IN, SOCKET_SESSIONS, STORE, THROTTLE
from ..auth import Principal
from ..client_address import client_address
from ..i18n import LANGUAGES, SESSION_LANGUAGE
from ..sign_in import WRONG_CREDENTIALS
from ..types import Role
from .http import (
    csrf_token,
    json_ok,
    principal_of,
    read_form,
    read_json,
    session_of,
    sign_in,
    sign_out,
    translator_of,
)

HOME_OF = {
    Role.OFFICER: "/officer",
    Role.AUDITOR: "/audit",
    Role.OPERATOR: "/operator",
    Role.APPLICANT: "/interview",
}
LOGIN_FIELDS = {"username": 64, "password": 256, "code": 12}


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
    app = request.app
    client = client_address(request)
    try:
        app[THROTTLE].check(client)
        form = await read_form(request, LOGIN_FIELDS)
        attempt = await app[SIGN_IN].attempt(
            form["username"], Secret(form["password"]), form["code"]
        )
    except NexusError as exc:
        return await refused_login(request, exc)
    await app[STORE].access_log.append(
        attempt.actor, attempt.role, "sign-in", "", attempt.outcome, client
    )
    await app[SOCKET_SESSIONS].close(attempt.ended_sessions)
    if attempt.error is not None or attempt.account is None:
        return await refused_login(request, attempt.error or Unauthorized(WRONG_CREDENTIALS))
    account = attempt.account
    await sign_in(
        request, Principal(role=account.role, account_id=account.id, agency=account.agency)
    )
    raise web.HTTPSeeOther(HOME_OF[account.role])


class LanguageBody(msgspec.Struct, forbid_unknown_fields=True):
    language: str


def safe_next(target: str) -> str:
    """Only a path on this site: no open redirect. Judged on the address as it will be sent
    (yarl drops tabs and newlines, so ``/<TAB>/evil.example`` would become
    ``//evil.example``), and nothing a browser might read as a host separator is let in."""
    if any(ord(c) < 0x21 or c == "\\" or ord(c) == 0x7F for c in target):
        return "/"
    try:
        url = URL(target)
    except ValueError:
        return "/"
    sent = str(url)
    if url.is_absolute() or url.scheme or not sent.startswith("/") or sent.startswith("//"):
        return "/"
    return sent


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise BadRequest("choose one of these languages: {choices}", choices=", ".join(LANGUAGES))
    return language


async def choose_language(request: web.Request) -> web.StreamResponse:
    """The language buttons' form: switch the session's language, then back to ``next``."""
    form = await read_form(request, {"language": 8, "next": 2000}, optional=frozenset({"next"}))
    (await session_of(request))[SESSION_LANGUAGE] = _check_language(form["language"])
    raise web.HTTPSeeOther(safe_next(form.get("next", "/")))


async def switch_language(request: web.Request) -> web.StreamResponse:
    """For pages switching in place (mid-call): the new language's messages."""
    language = _check_language((await read_json(request, LanguageBody)).language)
    (await session_of(request))[SESSION_LANGUAGE] = language
    messages = request.app[CATALOGS].translator(language).messages
    return json_ok({"language": language, "messages": messages})


async def logout(request: web.Request) -> web.StreamResponse:
    await request.app[SOCKET_SESSIONS].close(await sign_out(request))
    raise web.HTTPSeeOther("/")
