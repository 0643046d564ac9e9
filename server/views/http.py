"""Request helpers shared by the views: the caller, validated bodies, CSRF, JSON answers."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

import aiohttp_jinja2
import msgspec
from aiohttp import web
from aiohttp_session import Session, get_session

from common.errors import BadRequest, PayloadTooLarge, Unauthorized

from ..appkeys import CATALOGS, PRINCIPAL, SETTINGS, STORE
from ..auth import Principal
from ..client_address import client_address
from ..i18n import LANGUAGES, SESSION_LANGUAGE, Translator, page_language
from ..people import signed_in_as

T = TypeVar("T")
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_ID = "sid"
"""The cookie's key for the server-side session's id; who it is lies in the store."""
_LOOKED_UP: web.RequestKey[tuple[Principal | None]] = web.RequestKey("looked_up")
_KNOWN_LANGUAGE: web.RequestKey[dict[str, str | None]] = web.RequestKey("known_language")


async def session_of(request: web.Request) -> Session:
    """The cookie session: language, CSRF token and the server-side session's id."""
    return await get_session(request)


async def principal_of(request: web.Request) -> Principal | None:
    """Who is signed in, if their server-side session still holds (read once a request)."""
    if _LOOKED_UP in request:
        return request[_LOOKED_UP][0]
    session = await session_of(request)
    session_id = session.get(SESSION_ID)
    principal = None
    if isinstance(session_id, str):
        principal = await request.app[STORE].sessions.principal(session_id)
        if principal is None:  # ended or expired: the cookie forgets it too
            del session[SESSION_ID]
    request[_LOOKED_UP] = (principal,)
    return principal


def session_id_of(session: Session) -> str | None:
    session_id = session.get(SESSION_ID)
    return session_id if isinstance(session_id, str) else None


def current(request: web.Request) -> Principal:
    """The caller, as the access middleware found them on a route that needs a sign-in."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise Unauthorized("sign in first")
    return principal


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, created on first use."""
    session = await session_of(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def share_known_language(request: web.Request) -> None:
    """Room for `know_language` that copies of this request share (the handler gets one
    when a form is read first), so that an error page rendered outside speaks it too."""
    request[_KNOWN_LANGUAGE] = {}


async def know_language(request: web.Request, language: str | None) -> None:
    """The language known for the person this request's page is for (None: not known),
    weighed by `page_language`'s rule from here on, in the page being rendered too (its
    context was made before the handler ran)."""
    if _KNOWN_LANGUAGE not in request:
        share_known_language(request)
    request[_KNOWN_LANGUAGE]["language"] = language
    context = request.get(aiohttp_jinja2.REQUEST_CONTEXT_KEY)
    if isinstance(context, dict):
        context.update(await _language_context(request))


async def translator_of(request: web.Request) -> Translator:
    """The request's language, by `page_language`'s rule."""
    chosen = (await session_of(request)).get(SESSION_LANGUAGE)
    known = request.get(_KNOWN_LANGUAGE, {}).get("language")
    language = page_language(chosen, known, request.headers.get("Accept-Language"))
    return request.app[CATALOGS].translator(language)


async def page_context(request: web.Request) -> dict[str, object]:
    """What every page's template may use: the caller, CSRF token and language tools."""
    principal = await principal_of(request)
    return {
        "request": request,
        "principal": principal,
        "signed_in_as": await signed_in_as(request.app[STORE], principal),
        "csrf_token": await csrf_token(request),
        **await _language_context(request),
    }


async def _language_context(request: web.Request) -> dict[str, object]:
    translate = await translator_of(request)
    return {
        "language": translate.language,
        "languages": LANGUAGES,
        "messages": translate.messages,
        "_": translate,
        "T": translate.tagged,
    }


async def sign_in(request: web.Request, principal: Principal) -> None:
    """A fresh session (new id, new CSRF token) for the newly signed-in principal; one
    signed in before on this browser ends; the language chosen before carries over."""
    await sign_out(request)
    session = await session_of(request)
    session[SESSION_ID] = (await request.app[STORE].sessions.start(principal)).reveal()
    session["csrf"] = secrets.token_urlsafe(32)
    request[_LOOKED_UP] = (principal,)


async def sign_out(request: web.Request) -> list[bytes]:
    """End this browser's server-side session and start its cookie afresh (the language
    stays); the hashes of the sessions ended."""
    session = await session_of(request)
    session_id = session_id_of(session)
    language = session.get(SESSION_LANGUAGE)
    session.invalidate()
    session = await session_of(request)
    if isinstance(language, str):
        session[SESSION_LANGUAGE] = language
    request[_LOOKED_UP] = (None,)
    if session_id is None:
        return []
    return await request.app[STORE].sessions.end(session_id)


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The body, refused with 413 beyond ``limit`` (by default the max_body_bytes setting;
    aiohttp's own cap is the largest limit of any route)."""
    limit = limit or request.app[SETTINGS].max_body_bytes
    too_large = PayloadTooLarge("the request body is larger than {limit} bytes", limit=limit)
    if (request.content_length or 0) > limit:
        raise too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


async def read_json(request: web.Request, kind: type[T]) -> T:
    """The body decoded strictly into ``kind``: wrong types, unknown or missing fields and
    malformed JSON are a 400 naming the field."""
    if request.content_type != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    body = await read_body(request)
    try:
        return msgspec.json.decode(body, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


async def read_form(
    request: web.Request, fields: dict[str, int], optional: frozenset[str] = frozenset()
) -> dict[str, str]:
    """A urlencoded form with exactly ``fields`` (name -> maximum length), CSRF aside."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    await read_body(request)
    form = await request.post()
    values: dict[str, str] = {}
    for name, value in form.items():
        if name == CSRF_FIELD:
            continue
        if name not in fields:
            raise BadRequest(f"unexpected form field {name!r}")
        if not isinstance(value, str):
            raise BadRequest(f"form field {name!r} must be text")
        if len(value) > fields[name]:
            raise BadRequest(f"form field {name!r} is longer than {fields[name]} characters")
        values[name] = value
    missing = [name for name in fields if name not in values and name not in optional]
    if missing:
        raise BadRequest(f"missing form field(s): {', '.join(missing)}")
    return values


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


async def log_access(
    request: web.Request, action: str, target: str = "", outcome: str = "allowed"
) -> None:
    """Append the signed-in caller's access to ``target`` to the access log."""
    principal = current(request)
    await request.app[STORE].access_log.append(
        principal.label, principal.role, action, target, outcome, client_address(request)
    )
