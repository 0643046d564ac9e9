"""The audit console's pages and endpoints: sign-in, the session list, one session, and
its decrypted media and ID stills. Every access is appended to the console's own
tamper-evident log (`server.audit_trail`)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from common.errors import BadRequest, NexusError, NotFound, Unauthorized
from common.secret import Secret

from ..appkeys import AUDIT, SIGN_IN, STORE, THROTTLE, TRAIL
from ..auth import Principal
from ..client_address import client_address
from ..people import People
from ..sign_in import WRONG_CREDENTIALS, Outcome
from ..types import Role
from .http import current, json_ok, read_form, sign_in, sign_out
from .public import LOGIN_FIELDS, refused_login
from .whole_numbers import whole_number

MEDIA_RANGE_MAX = 4 * 1024 * 1024  # one range answer's bytes; players ask again for the rest
OUTCOMES = ("approved", "denied", "referred", "pending")
# What the access log says auditors did (the page shows them translated).
ACTIONS = (
    "sign-in",
    "sign-in-denied",
    "sign-in-locked",
    "sign-in-code-reused",
    "list",
    "open",
    "play",
    "view-still",
    "export",
)
STATUSES = ("verified", "incomplete", "failed")  # and "checking" until verified


def _record(request: web.Request, action: str, session: str = "", **detail: Any) -> None:
    request.app[TRAIL].record(current(request).label, action, session, **detail)


# --- signing in --------------------------------------------------------------------------

SIGN_IN_ACTIONS = {
    Outcome.ALLOWED: "sign-in",
    Outcome.DENIED: "sign-in-denied",
    Outcome.DISABLED: "sign-in-denied",
    Outcome.LOCKED: "sign-in-locked",
    Outcome.CODE_REUSED: "sign-in-code-reused",
}


async def login(request: web.Request) -> web.StreamResponse:
    app = request.app
    try:
        app[THROTTLE].check(client_address(request))
        form = await read_form(request, LOGIN_FIELDS)
        attempt = await app[SIGN_IN].attempt(
            form["username"], Secret(form["password"]), form["code"]
        )
    except NexusError as exc:
        return await refused_login(request, exc)
    app[TRAIL].record(attempt.actor, SIGN_IN_ACTIONS[attempt.outcome])
    if attempt.error is not None or attempt.account is None:
        return await refused_login(request, attempt.error or Unauthorized(WRONG_CREDENTIALS))
    await sign_in(request, Principal(role=Role.AUDITOR, account_id=attempt.account.id))
    raise web.HTTPSeeOther("/")


async def logout(request: web.Request) -> web.StreamResponse:
    await sign_out(request)
    raise web.HTTPSeeOther("/login")


# --- the sessions ---------------------------------------------------------------------


def _filters(request: web.Request) -> dict[str, str]:
    query = request.query
    chosen = {key: query.get(key, "") for key in ("from", "to", "outcome", "status")}
    for key in ("from", "to"):
        if chosen[key]:
            try:
                date.fromisoformat(chosen[key])
            except ValueError:
                raise BadRequest("give dates as YYYY-MM-DD") from None
    if chosen["outcome"] not in ("", *OUTCOMES):
        raise BadRequest("outcome is one of: {choices}", choices=", ".join(OUTCOMES))
    if chosen["status"] not in ("", *STATUSES):
        raise BadRequest("status is one of: {choices}", choices=", ".join(STATUSES))
    return chosen


async def sessions_page(request: web.Request) -> web.StreamResponse:
    chosen = _filters(request)
    console = request.app[AUDIT]
    summaries = await asyncio.gather(*map(console.summary, console.session_ids()))
    shown = [
        s
        for s in sorted(summaries, key=lambda s: (s.date, s.interview_id), reverse=True)
        if (not chosen["from"] or s.date >= chosen["from"])
        and (not chosen["to"] or s.date <= chosen["to"])
        and chosen["outcome"] in ("", s.outcome)
        # a session still being checked may turn out to be any status: kept in view
        and (not chosen["status"] or s.status in (chosen["status"], "checking"))
    ]
    _record(request, "list", filters={k: v for k, v in chosen.items() if v})
    checking = sum(1 for s in shown if s.status == "checking")
    return aiohttp_jinja2.render_template(
        "audit_sessions.html",
        request,
        {
            "sessions": shown,
            "chosen": chosen,
            "outcomes": OUTCOMES,
            "statuses": STATUSES,
            "checking": checking,
        },
    )


async def statuses(request: web.Request) -> web.StreamResponse:
    """The verification status of the sessions named (``?id=…``; all if none), for the
    list to fill in those still being checked; it polls, so only those are stat()ed. Ids
    and statuses only, nothing about anyone: not an access to log."""
    console = request.app[AUDIT]
    found = {}
    for interview_id in request.query.getall("id", None) or console.session_ids():
        try:
            result = console.known_verification(interview_id)
        except NotFound:
            continue  # not a session (any more): nothing to report
        found[interview_id] = {
            "status": console.status(result),
            "problem": result.problems[0] if result and result.problems else "",
        }
    return json_ok({"statuses": found})


async def session_page(request: web.Request) -> web.StreamResponse:
    interview_id = request.match_info["interview_id"]
    request.app[AUDIT].session_dir(interview_id)  # 404 before anything is logged
    _record(request, "open", interview_id)
    return aiohttp_jinja2.render_template(
        "audit_session.html", request, {"interview_id": interview_id}
    )


async def session_data(request: web.Request) -> web.StreamResponse:
    interview_id = request.match_info["interview_id"]
    detail = await request.app[AUDIT].detail(interview_id)
    people = People(request.app[STORE])
    detail["accesses"] = [
        {"at": a.at, "auditor": str(await people.named(a.auditor)), "action": a.action}
        for a in request.app[TRAIL].accesses(interview_id)
    ]
    trail = request.app[TRAIL].check()
    detail["access_log"] = {"entries": len(trail.events), "verified": trail.complete}
    return json_ok(detail)


async def media(request: web.Request) -> web.StreamResponse:
    """A media segment decrypted on the fly, chunk by chunk, for HTTP Range requests."""
    interview_id, name = request.match_info["interview_id"], request.match_info["file"]
    try:
        wanted = request.http_range
    except ValueError:
        raise BadRequest("the Range header is malformed") from None
    start = wanted.start or 0
    if start < 0:
        raise BadRequest("suffix ranges are not supported; ask for bytes=START-")
    length: int | None
    if "Range" not in request.headers:
        length = None  # a plain GET gets the whole segment (about 6 MB a minute)
    elif wanted.stop is None:
        length = MEDIA_RANGE_MAX
    else:
        length = min(wanted.stop - start, MEDIA_RANGE_MAX)
    body, size = await asyncio.to_thread(
        request.app[AUDIT].media_range, interview_id, name, start, length
    )
    if start == 0:
        _record(request, "play", interview_id, file=name)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if start >= size and size:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    status = 200
    if "Range" in request.headers:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{size}"
    return web.Response(body=body, status=status, content_type="video/webm", headers=headers)


async def export(request: web.Request) -> web.StreamResponse:
    """A participant's recording as one WebM download, decrypted in memory."""
    interview_id, seat = request.match_info["interview_id"], request.match_info["seat"]
    data = await asyncio.to_thread(request.app[AUDIT].export, interview_id, seat)
    _record(request, "export", interview_id, seat=seat)
    return web.Response(
        body=data,
        content_type="video/webm",
        headers={
            "Content-Disposition": f'attachment; filename="{interview_id}-{seat}.webm"',
            "Cache-Control": "no-store",
        },
    )


async def still(request: web.Request) -> web.StreamResponse:
    interview_id = request.match_info["interview_id"]
    number = whole_number(request.match_info["number"], "a still is named by its number")
    jpeg = await asyncio.to_thread(request.app[AUDIT].still, interview_id, number)
    _record(request, "view-still", interview_id, number=number)
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
