"""Read-only views for auditors on the interview server (replay lives in the audit console)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from ..appkeys import STORE
from ..people import People
from .http import json_ok, log_access
from .whole_numbers import whole_number

PAGE_SIZE = 100


def _page(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return whole_number(raw, "page must be a whole number from 1", low=1, high=1_000_000)


async def console_page(request: web.Request) -> web.StreamResponse:
    page = _page(request)
    interviews = await request.app[STORE].interviews.all(PAGE_SIZE, (page - 1) * PAGE_SIZE)
    await log_access(request, "list-interviews")
    return aiohttp_jinja2.render_template(
        "audit.html", request, {"interviews": interviews, "page": page}
    )


async def interviews(request: web.Request) -> web.StreamResponse:
    page = _page(request)
    found = await request.app[STORE].interviews.all(PAGE_SIZE, (page - 1) * PAGE_SIZE)
    await log_access(request, "list-interviews")
    return json_ok({"page": page, "interviews": [i.summary() for i in found]})


async def access_log(request: web.Request) -> web.StreamResponse:
    """The newest entries, each actor shown as a person (name, role, agency or
    organisation); the stored log keeps their labels."""
    store = request.app[STORE]
    entries = await store.access_log.entries(limit=PAGE_SIZE)
    await log_access(request, "read-access-log")
    people = People(store)
    shown = [
        {
            "at": entry.at,
            "who": (await people.named(entry.actor)).as_json(),
            "action": entry.action,
            "target": entry.target,
            "outcome": entry.outcome,
            "client": entry.client,
        }
        for entry in entries
    ]
    return json_ok({"entries": shown})
