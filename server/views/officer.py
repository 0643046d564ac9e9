"""The officer's console: availability, the queue, taking an interview, the decision (and
its draft, kept while the officer works on it)."""

from __future__ import annotations

from typing import Annotated

import aiohttp_jinja2
import msgspec
from aiohttp import web

from signalling.appkeys import LOBBY, ROOMS
from signalling.types import RoomId

from ..appkeys import RECORDS, STILLS, STORE
from ..auth import Principal
from ..errors import BadRequest, Conflict
from ..reason_codes import REASON_CODES, check_reason_codes
from ..store import Store
from ..store.decisions import Decision
from ..types import Agency, Role, Verdict
from .access import interview_in_path
from .http import current, json_ok, log_access, read_json
from .seats import call_over, seated_officers
from .stills import forget_if_over

MAX_NOTES = 5000
ReasonCodes = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=16)]], msgspec.Meta(max_length=10)
]
Notes = Annotated[str, msgspec.Meta(max_length=MAX_NOTES)]


class AvailabilityBody(msgspec.Struct, forbid_unknown_fields=True):
    available: bool


class DecisionBody(msgspec.Struct, forbid_unknown_fields=True):
    verdict: Verdict
    reason_codes: ReasonCodes
    notes: Notes = ""


class DraftBody(msgspec.Struct, forbid_unknown_fields=True):
    """The decision form as it stands: any part may still be empty."""

    verdict: Verdict | None = None
    reason_codes: ReasonCodes = msgspec.field(default_factory=list)
    notes: Notes = ""


async def console_page(request: web.Request) -> web.StreamResponse:
    account_id, agency = current(request).officer_seat()
    account = await request.app[STORE].accounts.get(account_id)
    return aiohttp_jinja2.render_template(
        "officer.html",
        request,
        {"account": account, "reason_codes": REASON_CODES[agency], "verdicts": list(Verdict)},
    )


async def queue(request: web.Request) -> web.StreamResponse:
    """The agency's queue, and the call this officer is in (a reloaded console rejoins it)."""
    account_id, agency = current(request).officer_seat()
    store = request.app[STORE]
    waiting = await store.interviews.queue(agency)
    in_call = None
    for seated in await store.interviews.in_progress_for(account_id):
        ended_by = await store.events.ended_by(seated.id)
        if not call_over(seated, ended_by) and agency.value.lower() not in ended_by:
            in_call = seated.id  # this officer's part is still on
            break
    lobby = request.app[LOBBY]
    waited = {i.id: lobby.waiting_seconds(i.id) for i in waiting}
    # applicants in the waiting room first, longest wait first; then the others by window
    waiting.sort(key=lambda i: (waited[i.id] is None, -(waited[i.id] or 0)))
    listed = [{**i.summary(), "waiting_seconds": waited[i.id]} for i in waiting]
    return json_ok({"agency": agency, "interviews": listed, "in_call": in_call})


async def set_availability(request: web.Request) -> web.StreamResponse:
    account_id, _ = current(request).officer_seat()
    body = await read_json(request, AvailabilityBody)
    await request.app[STORE].accounts.set_available(account_id, body.available)
    await log_access(request, "availability", "available" if body.available else "away")
    return json_ok({"available": body.available})


def _decision_json(decision: Decision, decided_by: str) -> dict[str, object]:
    """A decision as people read it: the officer by name, never by database id."""
    return {
        "agency": decision.agency,
        "verdict": decision.verdict,
        "reason_codes": list(decision.reason_codes),
        "notes": decision.notes,
        "decided_by": decided_by,
        "decided_at": decision.decided_at,
    }


async def _visible_decisions(
    store: Store, decisions: dict[Agency, Decision], principal: Principal
) -> dict[str, object]:
    """Blind until both agencies have decided: an officer sees only their own agency's."""
    both_in = len(decisions) == len(Agency)
    shown = {}
    for agency, decision in decisions.items():
        if both_in or principal.role is Role.AUDITOR or agency is principal.agency:
            officer = await store.accounts.get(decision.officer_id)
            shown[agency] = _decision_json(decision, officer.display_name)
    return {"both_decided": both_in, "decisions": shown}


async def _own_draft(store: Store, interview_id: str, principal: Principal) -> dict[str, object]:
    """The officer's own draft for the form (``draft``: None if there is none); auditors
    and applicants get no ``draft`` at all."""
    if principal.role is not Role.OFFICER:
        return {}
    account_id, _ = principal.officer_seat()
    draft = await store.drafts.get(interview_id, account_id)
    return {"draft": None if draft is None else draft.as_json()}


async def interview(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    shown = await interview_in_path(request)
    application = await store.applications.get(shown.application_id)
    decisions = await store.decisions.for_interview(shown.id)
    principal = current(request)
    await log_access(request, "view-interview", shown.id)
    return json_ok(
        {
            "interview": shown.summary(),
            "application": application.public_record(),
            "officers": await seated_officers(store, shown),
            "stills": request.app[STILLS].listing(shown.id),
            **await _visible_decisions(store, decisions, principal),
            **await _own_draft(store, shown.id, principal),
        }
    )


async def take(request: web.Request) -> web.StreamResponse:
    account_id, agency = current(request).officer_seat()
    taken = await request.app[STORE].interviews.take(
        request.match_info["interview_id"], account_id, agency
    )
    await log_access(request, "take-interview", taken.id)
    return json_ok({"interview": taken.summary()})


async def decide(request: web.Request) -> web.StreamResponse:
    principal = current(request)
    account_id, agency = principal.officer_seat()
    body = await read_json(request, DecisionBody)
    codes = tuple(body.reason_codes)
    problem = check_reason_codes(agency, body.verdict, codes)
    if problem:
        raise BadRequest(problem)
    interview = await interview_in_path(request)
    store = request.app[STORE]
    status = await store.decisions.record(
        interview.id,
        interview.application_id,
        agency,
        body.verdict,
        codes,
        body.notes,
        account_id,
        principal.label,
    )
    await store.drafts.discard(interview.id, agency)
    await forget_if_over(request.app, interview.id)  # both agencies in: its stills go
    await request.app[RECORDS].decision(
        RoomId(interview.id), agency.value, body.verdict.value, list(codes), body.notes
    )
    await log_access(request, "decide", interview.id)
    request.app[ROOMS].record_updated(RoomId(interview.id), "decision")
    decisions = await store.decisions.for_interview(interview.id)
    visible = await _visible_decisions(store, decisions, principal)
    result = status if visible["both_decided"] else None
    return json_ok({"application_status": result, **visible}, status=201)


async def save_draft(request: web.Request) -> web.StreamResponse:
    """Keep the officer's decision form as it stands, in place of what was kept before.

    The page saves a moment after each change, so these saves stay out of the access log
    (opening the interview and deciding are logged); the notes are never logged at all."""
    account_id, agency = current(request).officer_seat()
    body = await read_json(request, DraftBody)
    unknown = [code for code in body.reason_codes if code not in REASON_CODES[agency]]
    if unknown:
        raise BadRequest(
            "unknown {agency} reason code(s): {codes}",
            agency=agency.value,
            codes=", ".join(unknown),
        )
    interview = await interview_in_path(request)
    if not interview.is_open:
        raise Conflict(
            "interview {id} is closed; its decision form is no longer kept", id=interview.id
        )
    kept = await request.app[STORE].drafts.save(
        interview.id, account_id, agency, body.verdict, tuple(body.reason_codes), body.notes
    )
    if not kept:
        raise Conflict(
            "{agency} has already decided interview {id}; the decision form is no longer kept",
            agency=agency.value,
            id=interview.id,
        )
    return json_ok({"kept": True})
