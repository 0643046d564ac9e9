"""The officer's console: availability, the queue, taking an interview, the decision (and
its draft, kept while the officer works on it)."""

from __future__ import annotations

from typing import Annotated

import aiohttp_jinja2
import aiosqlite
import msgspec
from aiohttp import web

from common.errors import BadRequest, Conflict
from common.names import Agency, RoomId
from server.types import AccountId, ApplicationStatus, Role, Verdict

from ..appkeys import CLOCK, LIVES, LOBBY, RECORDS, SETTINGS, STILLS, STORE
from ..auth import Principal
from ..interview_actions import Decide, Reassign, Seat
from ..interview_state import Party, Phase
from ..reason_codes import REASON_CODES, check_reason_codes
from ..store import Store
from ..store.decisions import Decision
from ..store.interviews import Interview
from .access import interview_in_path
from .http import current, json_ok, log_access, read_json
from .seats import decision_overdue_since, seated_officers

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
    """The agency's queue; the call this officer is in (a reloaded console rejoins it);
    the interviews whose decision this officer still owes; and those whose decision
    another officer of the agency has left overdue, offered to this one."""
    account_id, agency = current(request).officer_seat()
    store = request.app[STORE]
    waiting = await store.interviews.queue(agency)
    in_call = None
    awaiting = []
    for seated in await store.interviews.seated_for(account_id):
        if seated.officer_for(agency) != account_id:
            continue
        life = seated.life
        if life.phase is Phase.AWAITING_DECISIONS and life.awaits_decision_from(agency):
            awaiting.append(seated.summary())
        elif in_call is None and life.may_join(Party.of(agency)):
            in_call = seated.id
    offered = []
    due = decision_overdue_since(request.app[CLOCK](), request.app[SETTINGS])
    for late in await store.interviews.awaiting_decisions(agency, due):
        holder = late.officer_for(agency)
        if holder is not None and holder != account_id:
            officer = await store.accounts.get(holder)
            offered.append({**late.summary(), "officer": officer.display_name})
    lobby = request.app[LOBBY]
    waited = {i.id: lobby.waiting_seconds(i.id) for i in waiting}
    # applicants in the waiting room first, longest wait first; then the others by window
    waiting.sort(key=lambda i: (waited[i.id] is None, -(waited[i.id] or 0)))
    listed = [{**i.summary(), "waiting_seconds": waited[i.id]} for i in waiting]
    return json_ok(
        {
            "agency": agency,
            "interviews": listed,
            "in_call": in_call,
            "awaiting_decision": awaiting,
            "offered": offered,
        }
    )


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
    awaiting = principal.role is Role.OFFICER and _owes_decision(shown, principal)
    return json_ok(
        {
            "interview": shown.summary(),
            "phase": shown.life.phase,
            "awaiting_your_decision": awaiting,
            "application": application.public_record(),
            "officers": await seated_officers(store, shown),
            "stills": request.app[STILLS].listing(shown.id),
            **await _visible_decisions(store, decisions, principal),
            **await _own_draft(store, shown.id, principal),
        }
    )


def _owes_decision(interview: Interview, principal: Principal) -> bool:
    account_id, agency = principal.officer_seat()
    return interview.officer_for(agency) == account_id and interview.life.awaits_decision_from(
        agency
    )


async def take(request: web.Request) -> web.StreamResponse:
    account_id, agency = current(request).officer_seat()
    interview_id = request.match_info["interview_id"]
    await request.app[LIVES].act(interview_id, Seat(agency, account_id))
    taken = await request.app[STORE].interviews.get(interview_id)
    await log_access(request, "take-interview", taken.id)
    return json_ok({"interview": taken.summary()})


async def take_decision(request: web.Request) -> web.StreamResponse:
    """Take over a decision another officer of the agency has left overdue."""
    account_id, agency = current(request).officer_seat()
    interview = await interview_in_path(request)
    due = decision_overdue_since(request.app[CLOCK](), request.app[SETTINGS])
    holder = interview.officer_for(agency)
    if holder != account_id:
        ended = interview.call_ended_at
        if ended is None or ended > due or not interview.life.awaits_decision_from(agency):
            raise Conflict(
                "the {agency} decision of interview {id} is not overdue; its officer still has it",
                agency=agency.value,
                id=interview.id,
            )
    await request.app[LIVES].act(interview.id, Reassign(agency, account_id))
    await log_access(request, "take-decision", interview.id)
    taken = await request.app[STORE].interviews.get(interview.id)
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
    store, records = request.app[STORE], request.app[RECORDS]
    settled: list[ApplicationStatus] = []

    async def sealed_notes() -> dict[str, object]:
        fields: dict[str, object] = {
            "agency": agency.value,
            "verdict": body.verdict.value,
            "reason_codes": list(codes),
        }
        if body.notes:
            name = f"notes-{agency.value.lower()}.txt.age"
            fields |= await records.sealed_file(RoomId(interview.id), name, body.notes)
        return fields

    async def store_decision(db: aiosqlite.Connection) -> None:
        settled.append(
            await store.decisions.record(
                db,
                interview.id,
                interview.application_id,
                agency,
                body.verdict,
                codes,
                body.notes,
                AccountId(account_id),
                principal.label,
            )
        )

    await request.app[LIVES].act(
        interview.id, Decide(agency, account_id), prepare=sealed_notes, also=store_decision
    )
    await store.drafts.discard(interview.id, agency)
    await log_access(request, "decide", interview.id)
    decisions = await store.decisions.for_interview(interview.id)
    visible = await _visible_decisions(store, decisions, principal)
    result = settled[0] if settled and visible["both_decided"] else None
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
    if interview.life.ended:
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
