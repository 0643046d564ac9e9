"""The applicant's side: the invitation link, date-of-birth check, their own interview."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import msgspec
from aiohttp import web

from common.errors import BadRequest, Conflict, Gone, Locked, NexusError, NotFound
from common.names import Agency
from server.types import InterviewMode, InterviewState, Role

from .. import appointments
from ..appkeys import CLOCK, LIVES, SETTINGS, STORE
from ..auth import Principal, token_hash
from ..client_address import client_address
from ..interview_actions import Cancel, CheckIn, Consent
from ..interview_state import Life, Phase
from ..invitations import queue_cancellation
from ..letters import applicant_zone
from ..settings import Settings
from ..store.interviews import Interview
from .http import current, json_ok, know_language, read_form, read_json, sign_in, translator_of
from .seats import seated_officers

TOKEN_LENGTH = 43  # 32 random bytes, base64url without padding
CONSENT_VERSION = "2026-11-01"  # of the consent text in interview.html; logged with consent


async def invited_interview(request: web.Request) -> Interview:
    """The interview the link's token names; NotFound for no link or a replaced one."""
    token = request.match_info["token"]
    interview = None
    if len(token) == TOKEN_LENGTH:
        interview = await request.app[STORE].interviews.by_token_hash(token_hash(token))
    if interview is not None and await request.app[LIVES].settled(interview.id):
        interview = await request.app[STORE].interviews.get(interview.id)
    if interview is not None:
        await use_application_language(request, interview)
    if interview is None or interview.state is InterviewState.CANCELLED:
        raise NotFound("this interview link is not valid; use the newest link you were sent")
    return interview


async def use_application_language(request: web.Request, interview: Interview) -> None:
    """This request's pages and refusals about ``interview`` are in its application's
    language, when known, until the applicant chooses one on a page (`page_language`)."""
    application = await request.app[STORE].applications.get(interview.application_id)
    await know_language(request, application.language)


def may_still_open(request: web.Request, interview: Interview) -> None:
    """A link whose interview is not over opens within its window, until it is locked."""
    if interview.state is InterviewState.NO_SHOW:
        raise Gone(
            "this interview was missed; the program office will contact you to invite you again"
        )
    if interview.state is InterviewState.INTERRUPTED:
        raise Gone(
            "this interview was interrupted on our side; the program office will contact you"
        )
    if interview.window_end <= request.app[CLOCK]() or not interview.is_open:
        raise Gone("this interview link has expired; contact the program office for a new one")
    if interview.dob_failures >= request.app[SETTINGS].dob_max_failures:
        raise _link_locked()


def over_for_applicant(interview: Interview) -> bool:
    """The applicant's part is over: their link says so whenever it is opened again (the
    back button, the invitation), whatever the officers have or have not decided."""
    life = interview.life
    return life.phase is Phase.CLOSED or (next_step(life) == "done" and not life.ended)


def _complete_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("interview_complete.html", request, {})


def check_in_opens(interview: Interview, settings: Settings) -> datetime:
    """Check-in (the date of birth and everything after it) opens this long before the
    interview's window, so that the waiting room holds people about to be interviewed."""
    return interview.window_start - timedelta(minutes=settings.check_in_opens_minutes)


def schedule(interview: Interview, settings: Settings) -> dict[str, object]:
    """The interview's times for the pages: ISO 8601 for the browser to show in its own
    time zone, and UTC text for a page without scripts."""
    times = {
        "start": interview.window_start,
        "end": interview.window_end,
        "opens": check_in_opens(interview, settings),
    }
    return {
        "iso": {name: moment.isoformat() for name, moment in times.items()},
        "utc": {
            name: moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            for name, moment in times.items()
        },
        "minutes": settings.check_in_opens_minutes,
    }


def _come_back_later(
    request: web.Request, interview: Interview, status: int = 200
) -> web.StreamResponse | None:
    """The page saying when check-in opens, if it has not yet (None once it has)."""
    settings = request.app[SETTINGS]
    if request.app[CLOCK]() >= check_in_opens(interview, settings):
        return None
    return aiohttp_jinja2.render_template(
        "invitation_early.html",
        request,
        {"schedule": schedule(interview, settings), "invitation": request.path},
        status=status,
    )


async def invitation_page(request: web.Request) -> web.StreamResponse:
    interview = await invited_interview(request)
    if over_for_applicant(interview):
        return _complete_page(request)
    may_still_open(request, interview)
    early = _come_back_later(request, interview)
    if early is not None:
        return early
    return aiohttp_jinja2.render_template(
        "invitation.html",
        request,
        {"error": None, "schedule": schedule(interview, request.app[SETTINGS])},
    )


async def confirm_identity(request: web.Request) -> web.StreamResponse:
    interview = await invited_interview(request)
    if over_for_applicant(interview):
        return _complete_page(request)
    may_still_open(request, interview)
    # Too early: nothing is checked or counted; the page says when to come back.
    early = _come_back_later(request, interview, status=Conflict.status)
    if early is not None:
        return early
    store, limit = request.app[STORE], request.app[SETTINGS].dob_max_failures
    form = await read_form(request, {"date_of_birth": 10})
    try:
        given = date.fromisoformat(form["date_of_birth"])
    except ValueError:
        raise BadRequest("enter the date of birth as YYYY-MM-DD") from None
    label, client = f"applicant:{interview.id}", client_address(request)
    if not await store.interviews.begin_dob_attempt(interview.id, limit):
        await store.access_log.append(
            label, Role.APPLICANT, "confirm-identity", interview.id, "locked", client
        )
        return await _refused_identity(request, interview, _link_locked())
    application = await store.applications.get(interview.application_id)
    if given != application.date_of_birth:
        await store.access_log.append(
            label, Role.APPLICANT, "confirm-identity", interview.id, "denied", client
        )
        left = limit - (await store.interviews.get(interview.id)).dob_failures
        error: NexusError = (
            Locked("this link is now locked; contact the program office")
            if left <= 0
            else BadRequest("that date of birth does not match; {left} tries left", left=left)
        )
        return await _refused_identity(request, interview, error)
    await store.interviews.confirm_dob(interview.id)
    await request.app[LIVES].act(interview.id, CheckIn())
    await store.access_log.append(
        label, Role.APPLICANT, "confirm-identity", interview.id, "allowed", client
    )
    await sign_in(request, Principal(role=Role.APPLICANT, interview_id=interview.id))
    raise web.HTTPSeeOther("/interview")


def _link_locked() -> Locked:
    return Locked(
        "this link is locked after too many wrong dates of birth; contact the program office"
    )


async def _refused_identity(
    request: web.Request, interview: Interview, error: NexusError
) -> web.StreamResponse:
    translate = await translator_of(request)
    return aiohttp_jinja2.render_template(
        "invitation.html",
        request,
        {"error": translate.error(error), "schedule": schedule(interview, request.app[SETTINGS])},
        status=error.status,
    )


async def _own_interview(request: web.Request) -> Interview:
    interview_id = current(request).own_interview()
    await request.app[LIVES].settled(interview_id)
    interview = await request.app[STORE].interviews.get(interview_id)
    await use_application_language(request, interview)
    if interview.state is InterviewState.CANCELLED:
        raise Gone("this interview was replaced by a newer one; use the newest link you were sent")
    return interview


async def interview_page(request: web.Request) -> web.StreamResponse:
    interview = await _own_interview(request)
    if over_for_applicant(interview):
        return _complete_page(request)
    return aiohttp_jinja2.render_template(
        "interview.html",
        request,
        {
            "interview": interview,
            "consent_version": CONSENT_VERSION,
            "schedule": schedule(interview, request.app[SETTINGS]),
        },
    )


async def interview_info(request: web.Request) -> web.StreamResponse:
    """What the applicant's page needs: where they are in the interview and who is in it.
    Nothing here may follow the officers' decisions: those stay blind to the applicant as
    they are to the other agency (no decision list, no stored state that completes on them)."""
    interview = await _own_interview(request)
    store = request.app[STORE]
    summary = interview.summary()
    return json_ok(
        {
            **{key: summary[key] for key in ("id", "mode", "window_start", "window_end")},
            "consented": interview.life.consented,
            "officers": await seated_officers(store, interview),
            "next": next_step(interview.life),
            "consent_version": CONSENT_VERSION,
        }
    )


def next_step(life: Life) -> str:
    """Where the applicant's page goes on (re)load: ``done`` (their part is over),
    ``join`` (a call is on: back into it) or ``wait`` (the waiting room)."""
    if life.ended:
        return "done"
    if life.phase is Phase.IN_CALL:
        return "join"
    if life.phase is Phase.AWAITING_DECISIONS:
        cbp_step_to_come = life.mode is InterviewMode.TWO_STEP and life.step == Agency.CBSA.value
        return "wait" if cbp_step_to_come else "done"
    return "wait"


class ConsentBody(msgspec.Struct, forbid_unknown_fields=True):
    """The applicant agreed to be recorded, having been shown this version of the text."""

    text_version: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[0-9]+)?$")]
    language: Literal["en", "fr"] = "en"


async def consent(request: web.Request) -> web.StreamResponse:
    """Consent is given once per interview: a repeat (a double click, a retry, a second
    tab) answers as the first did and writes nothing."""
    interview = await _own_interview(request)
    body = await read_json(request, ConsentBody)
    if not interview.life.consented and body.text_version != CONSENT_VERSION:
        raise Conflict("the consent text has changed; reload the page to read the current one")
    detail = {"seat": "applicant", "text_version": body.text_version, "language": body.language}
    # Under the interview's lock: of requests arriving together, one records consent;
    # the others, and any repeat, change nothing. An interview that ended refuses.
    await request.app[LIVES].act(interview.id, Consent(), detail=detail)
    return json_ok({"recorded": True}, status=201)


# --- changing the appointment from the link -------------------------------------------------

OFFERED_TIMES = 48
"""The free times a page offers at most, earliest first: enough to choose from."""


def _local_text(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") + f" ({zone.key})"


async def _appointment_page(
    request: web.Request,
    interview: Interview,
    error: NexusError | None = None,
    notice: str | None = None,
) -> web.StreamResponse:
    """The appointment, and what the applicant may change: free times to move to and a
    cancel button, or why nothing can be changed now. Times are shown in the applicant's
    time zone."""
    store, settings = request.app[STORE], request.app[SETTINGS]
    application = await store.applications.get(interview.application_id)
    zone = applicant_zone(application, settings)
    translate = await translator_of(request)
    context: dict[str, object] = {
        "current": _local_text(interview.window_start, zone),
        "error": translate.error(error) if error else None,
        "notice": notice,
        "invitation": request.path.rsplit("/", 1)[0],
        "options": None,
        "refusal": None,
    }
    try:
        options = await appointments.change_options(
            store, settings, interview, request.app[CLOCK]()
        )
    except Conflict as exc:
        context["refusal"] = translate.error(exc)
    else:
        context["options"] = {
            "left": options.reschedules_left,
            "free": [
                {"value": moment.isoformat(), "text": _local_text(moment, zone)}
                for moment in options.free[:OFFERED_TIMES]
            ],
        }
    return aiohttp_jinja2.render_template(
        "appointment.html", request, context, status=error.status if error else 200
    )


async def _changeable(request: web.Request) -> Interview:
    interview = await invited_interview(request)
    if over_for_applicant(interview):
        raise Gone("this interview is over; it can no longer be changed")
    may_still_open(request, interview)
    return interview


async def appointment_page(request: web.Request) -> web.StreamResponse:
    return await _appointment_page(request, await _changeable(request))


async def reschedule(request: web.Request) -> web.StreamResponse:
    """Move the appointment to a free time; the same request again changes nothing."""
    interview = await _changeable(request)
    form = await read_form(request, {"starts": 40})
    try:
        to = datetime.fromisoformat(form["starts"])
    except ValueError:
        raise BadRequest("choose one of the times offered") from None
    if to.tzinfo is None:
        raise BadRequest("choose one of the times offered")
    store, settings, now = request.app[STORE], request.app[SETTINGS], request.app[CLOCK]()
    try:
        await appointments.reschedule(store, settings, interview, to, now)
    except Conflict as exc:
        return await _appointment_page(request, interview, error=exc)
    await store.access_log.append(
        f"applicant:{interview.id}",
        Role.APPLICANT,
        "reschedule",
        interview.id,
        "allowed",
        client_address(request),
    )
    moved = await store.interviews.get(interview.id)
    translate = await translator_of(request)
    return await _appointment_page(
        request, moved, notice=translate("Your appointment has been moved.")
    )


async def cancel_appointment(request: web.Request) -> web.StreamResponse:
    """Cancel the appointment: the application goes back to the queue. A repeat (a second
    click, a reload) finds it cancelled and says so again."""
    token = request.match_info["token"]
    store = request.app[STORE]
    await read_form(request, {"confirm": 3})
    found = (
        await store.interviews.by_token_hash(token_hash(token))
        if len(token) == TOKEN_LENGTH
        else None
    )
    if found is not None:
        await use_application_language(request, found)
    cancelled = found is not None and found.state is InterviewState.CANCELLED
    if found is not None and cancelled and await store.rosters.appointment_of(found.id):
        # a repeat: the queue step again, in case a failure came between the two the first
        # time (it changes nothing when done already)
        await appointments.return_to_queue(
            store, found.application_id, "appointment cancelled by the applicant", "applicant"
        )
        await queue_cancellation(store, request.app[SETTINGS], found.id)
        return aiohttp_jinja2.render_template("appointment_cancelled.html", request, {})
    interview = await _changeable(request)
    await appointments.change_options(store, request.app[SETTINGS], interview, request.app[CLOCK]())
    await request.app[LIVES].act(interview.id, Cancel(), detail={"by": "applicant"})
    await appointments.return_to_queue(
        store, interview.application_id, "appointment cancelled by the applicant", "applicant"
    )
    await queue_cancellation(store, request.app[SETTINGS], interview.id)
    await store.access_log.append(
        f"applicant:{interview.id}",
        Role.APPLICANT,
        "cancel",
        interview.id,
        "allowed",
        client_address(request),
    )
    return aiohttp_jinja2.render_template("appointment_cancelled.html", request, {})
