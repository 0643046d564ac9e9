"""Request middlewares and response headers: errors, access, CSRF, security headers.

Order (outermost first): request ids -> errors -> csrf -> access -> handler. Errors of every kind,
including aiohttp's own 404/405/413, come out as a clear JSON message for the API and a
page for browsers; an unexpected exception is logged and answered with a plain 500 that
reveals nothing. A client that left before its request was read is not an error of ours.
"""

from __future__ import annotations

import hmac
import logging

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from common.errors import BadRequest, CsrfRejected, NexusError
from common.logs import INTERVIEW_ID, REQUEST_ID

from .appkeys import PRINCIPAL, SETTINGS
from .logs import (
    INTERVIEW_ID_KEY,
    REQUEST_ID_HEADER,
    REQUEST_ID_KEY,
    loggable_interview_id,
    loggable_path,
    request_id,
)
from .views.http import (
    CSRF_FIELD,
    CSRF_HEADER,
    page_context,
    read_body,
    session_of,
    share_known_language,
    translator_of,
    wants_json,
)
from .views.routes import Route

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPE = "application/x-www-form-urlencoded"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


async def error_response(
    request: web.Request, status: int, code: str, message: str, **fields: object
) -> web.Response:
    """The error in the caller's language: JSON for the API, a page for browsers."""
    translated = (await translator_of(request))(message, **fields)
    if wants_json(request):
        return web.json_response({"error": {"code": code, "message": translated}}, status=status)
    # Errors raised before the template middleware ran still need the page context.
    context = await page_context(request) | {"status": status, "message": translated}
    return aiohttp_jinja2.render_template("error.html", request, context, status=status)


HTTP_ERROR_MESSAGES = {
    404: "there is nothing at this address",
    405: "{method} is not allowed here",
    413: "the request body is too large",
}


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request's id (the caller's if it is safe, `logs.request_id`) on every line
    logged for it and in its answer's X-Request-Id; the interview's id too when its
    address names one."""
    given = request[REQUEST_ID_KEY] = request_id(request.headers.get(REQUEST_ID_HEADER))
    known = request[INTERVIEW_ID_KEY] = loggable_interview_id(
        request.match_info.get("interview_id")
    )
    ids = REQUEST_ID.set(given)
    interview = INTERVIEW_ID.set(known)
    try:
        return await handler(request)
    finally:
        INTERVIEW_ID.reset(interview)
        REQUEST_ID.reset(ids)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    share_known_language(request)
    try:
        return await handler(request)
    except NexusError as exc:
        response = await error_response(request, exc.status, exc.code, exc.template, **exc.fields)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = HTTP_ERROR_MESSAGES.get(exc.status, exc.reason)
        code = exc.reason.lower().replace(" ", "_")
        fields = {"method": request.method} if exc.status == 405 else {}
        return await error_response(request, exc.status, code, message, **fields)
    except web.RequestPayloadError:  # a body that breaks off or does not inflate
        return await error_response(
            request, 400, "bad_request", "the request body could not be read"
        )
    except OSError as exc:
        if isinstance(exc, ConnectionError) and _client_left(request):
            log.debug("the client left during %s %s", request.method, loggable_path(request))
            return web.Response(status=400)  # never sent: no one is there to read it
        if isinstance(request.match_info.route.resource, web.StaticResource):
            # A name the file system will not look up (too long, say) is no file of ours.
            return await error_response(request, 404, "not_found", HTTP_ERROR_MESSAGES[404])
        return await _unexpected(request)
    except Exception:
        return await _unexpected(request)


def _client_left(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _unexpected(request: web.Request) -> web.Response:
    """Called while handling the exception: the log shows it, the answer does not."""
    log.exception("unexpected error on %s %s", request.method, loggable_path(request))
    return await error_response(request, 500, "internal_error", "something went wrong on our side")


def access_middleware(routes: tuple[Route, ...]) -> Middleware:
    """Applies each route's policy; a route missing from the table is refused outright."""
    policies = {(route.method, route.path): route.access for route in routes}

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        matched = request.match_info.route
        resource = matched.resource
        if resource is None or isinstance(resource, web.StaticResource):
            return await handler(request)  # aiohttp's own 404/405 answers; public files
        policy = policies.get((matched.method, resource.canonical))
        if policy is None:
            raise web.HTTPForbidden(reason="Route without an access policy")
        request[PRINCIPAL] = await policy.enforce(request)
        return await handler(request)

    return access


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every state-changing request carries the session's token (header or form field)."""
    if request.method in SAFE_METHODS:
        return await handler(request)
    expected = (await session_of(request)).get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if request.content_type == FORM_TYPE:
        request = await _with_form_read(request)
        if sent is None:
            field = (await request.post()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
    if not (isinstance(expected, str) and sent and hmac.compare_digest(expected, sent)):
        raise CsrfRejected(
            "this form has expired or was not sent from our page; reload the page and try again"
        )
    return await handler(request)


async def _with_form_read(request: web.Request) -> web.Request:
    """The request with its form body read, before any route, by anyone: so no more than
    the max_body_bytes setting (the app's own cap is the largest route's, a still's). A
    body is refused by its Content-Length before any of it is read, and else as soon as
    more than that has arrived (chunked, or inflated from gzip). The handlers inside are
    given this copy of the request, which holds the body and the form for them to read
    again; keys they set on it are not seen by the middlewares outside this one.

    The form is decoded here, by the charset it names (else UTF-8), for every route that
    reads one: a body that charset cannot decode, or a charset Python does not know, is a
    400 in one place rather than a 500 wherever a form is read."""
    bounded = request.clone(client_max_size=request.app[SETTINGS].max_body_bytes)
    await read_body(bounded)
    try:
        await bounded.post()
    except (UnicodeDecodeError, LookupError):
        raise BadRequest(
            "the form could not be read: send it as UTF-8 text, as our pages do"
        ) from None
    return bounded


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if REQUEST_ID_KEY in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
