"""The route table: every route with its access policy, in one list.

The access middleware reads the policy from here, and the authorization-matrix test walks
this same list, so a route cannot be added without a policy or escape the matrix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from . import (
    access,
    applicant,
    auditor,
    call_socket,
    device_check,
    officer,
    operator_actions,
    operator_console,
    public,
    stills,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: access.Access

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", public.index, access.PUBLIC),
    Route("GET", "/healthz", public.healthz, access.PUBLIC),
    Route("GET", "/login", public.login_page, access.PUBLIC),
    Route("POST", "/login", public.login, access.PUBLIC),
    Route("POST", "/logout", public.logout, access.PUBLIC),
    Route("POST", "/language", public.choose_language, access.PUBLIC),
    Route("POST", "/api/language", public.switch_language, access.PUBLIC),
    Route("GET", "/api/session", public.session_info, access.PUBLIC),
    Route("GET", "/i/{token}", applicant.invitation_page, access.PUBLIC),
    Route("POST", "/i/{token}", applicant.confirm_identity, access.PUBLIC),
    Route("GET", "/i/{token}/appointment", applicant.appointment_page, access.PUBLIC),
    Route("POST", "/i/{token}/appointment", applicant.reschedule, access.PUBLIC),
    Route("POST", "/i/{token}/cancel", applicant.cancel_appointment, access.PUBLIC),
    # The link is the key, as for the two above: the check runs before the date of birth.
    Route("GET", "/api/invitations/{token}/relays", device_check.relays, access.PUBLIC),
    Route("GET", "/interview", applicant.interview_page, access.APPLICANT),
    Route("GET", "/api/applicant/interview", applicant.interview_info, access.APPLICANT),
    Route("POST", "/api/applicant/consent", applicant.consent, access.APPLICANT),
    Route("GET", "/officer", officer.console_page, access.OFFICER),
    Route("GET", "/api/officer/queue", officer.queue, access.OFFICER),
    Route("POST", "/api/officer/availability", officer.set_availability, access.OFFICER),
    Route("GET", "/api/interviews/{interview_id}", officer.interview, access.INTERVIEW_READER),
    Route("POST", "/api/interviews/{interview_id}/take", officer.take, access.INTERVIEW_TAKER),
    Route(
        "POST",
        "/api/interviews/{interview_id}/take-decision",
        officer.take_decision,
        access.INTERVIEW_READER,
    ),
    Route(
        "POST", "/api/interviews/{interview_id}/decision", officer.decide, access.INTERVIEW_DECIDER
    ),
    Route(
        "PUT", "/api/interviews/{interview_id}/draft", officer.save_draft, access.INTERVIEW_DECIDER
    ),
    Route(
        "POST", "/api/interviews/{interview_id}/stills", stills.capture, access.INTERVIEW_DECIDER
    ),
    Route(
        "GET", "/api/interviews/{interview_id}/stills/{number}", stills.image, access.INTERVIEW_SEAT
    ),
    Route("GET", "/ws", call_socket.websocket, access.PARTICIPANT),
    Route("GET", "/audit", auditor.console_page, access.AUDITOR),
    Route("GET", "/api/audit/interviews", auditor.interviews, access.AUDITOR),
    Route("GET", "/api/audit/access-log", auditor.access_log, access.AUDITOR),
    Route("GET", "/operator", operator_console.console_page, access.OPERATOR),
    Route("POST", "/operator/schedule", operator_actions.schedule, access.OPERATOR),
    Route("GET", "/operator/schedule/status", operator_actions.schedule_status, access.OPERATOR),
    Route("GET", "/operator/figures/{figure}.csv", operator_console.figure_csv, access.OPERATOR),
)

STATIC_PREFIX = "/static"
