"""Who may reach what. Every route names one of these policies; the access middleware
applies it before the handler runs, so a handler never forgets a check.

Roles (PRODUCT.md): an applicant reaches only their own interview; an officer only
interviews assigned to them or waiting in their agency's queue; an auditor reads but never
changes anything; the operator runs the programme (imports, invitations, staff) from the
CLI and watches it on their console, and reads no interview.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from common.errors import Forbidden, Unauthorized

from ..appkeys import CLOCK, SETTINGS, STORE
from ..auth import Principal
from ..store.interviews import Interview
from ..types import Role
from .http import principal_of, wants_json
from .seats import decision_overdue_since

Check = Callable[[web.Request, Principal], Awaitable[None]]


@dataclass(frozen=True)
class Access:
    """A named policy: ``roles`` may try; ``check`` then looks at the target itself."""

    name: str
    roles: frozenset[Role] | None  # None: anyone, signed in or not
    check: Check | None = None

    async def enforce(self, request: web.Request) -> Principal | None:
        principal = await principal_of(request)
        if self.roles is None:
            return principal
        if principal is None:
            if Role.APPLICANT in self.roles:
                raise Unauthorized("open the link from your invitation first")
            if request.method == "GET" and not wants_json(request):
                raise web.HTTPSeeOther("/login")  # a staff page: offer the sign-in
            raise Unauthorized("sign in first")
        if principal.role not in self.roles:
            raise Forbidden(f"this page is not open to the {principal.role} role")
        if principal.role is Role.AUDITOR and request.method not in {"GET", "HEAD"}:
            raise Forbidden("auditors have read-only access")
        if self.check is not None:
            await self.check(request, principal)
        return principal


_INTERVIEW: web.RequestKey[Interview] = web.RequestKey("interview")


async def interview_in_path(request: web.Request) -> Interview:
    """The interview the path names, read once per request: the access check and the
    handler after it see the same row."""
    interview = request.get(_INTERVIEW)
    if interview is None:
        interview = await request.app[STORE].interviews.get(request.match_info["interview_id"])
        request[_INTERVIEW] = interview
    return interview


async def _officer_may_see(request: web.Request, principal: Principal) -> None:
    """Assigned to it, or it waits for an officer of their agency."""
    interview = await interview_in_path(request)  # 404 for an unknown id, for everyone
    if principal.role is Role.AUDITOR:
        return
    account_id, agency = principal.officer_seat()
    if interview.is_assigned(account_id):
        return
    if await request.app[STORE].interviews.is_waiting_for(interview.id, agency):
        return
    ended = interview.call_ended_at
    due = decision_overdue_since(request.app[CLOCK](), request.app[SETTINGS])
    if ended is not None and ended <= due and interview.life.awaits_decision_from(agency):
        return  # its decision is overdue: offered to every officer of the agency
    raise Forbidden(f"interview {interview.id} is assigned to other officers")


async def _officer_assigned(request: web.Request, principal: Principal) -> None:
    interview = await interview_in_path(request)
    account_id, agency = principal.officer_seat()
    if interview.officer_for(agency) != account_id:
        raise Forbidden(f"only the {agency} officer assigned to {interview.id} may do this")


async def _officer_seated(request: web.Request, principal: Principal) -> None:
    """Any officer seated in the interview (either agency)."""
    interview = await interview_in_path(request)
    account_id, _ = principal.officer_seat()
    if not interview.is_assigned(account_id):
        raise Forbidden(f"only the officers of {interview.id} may see this")


async def _officer_may_take(request: web.Request, principal: Principal) -> None:
    interview = await interview_in_path(request)
    account_id, agency = principal.officer_seat()
    if interview.officer_for(agency) == account_id:
        return
    if interview.officer_for(agency) is not None:
        raise Forbidden(f"interview {interview.id} already has a {agency} officer")


PUBLIC = Access("public", None)
APPLICANT = Access("applicant", frozenset({Role.APPLICANT}))
OFFICER = Access("officer", frozenset({Role.OFFICER}))
AUDITOR = Access("auditor", frozenset({Role.AUDITOR}))
OPERATOR = Access("operator", frozenset({Role.OPERATOR}))
PARTICIPANT = Access("participant", frozenset({Role.APPLICANT, Role.OFFICER}))
INTERVIEW_READER = Access(
    "interview reader", frozenset({Role.OFFICER, Role.AUDITOR}), _officer_may_see
)
INTERVIEW_TAKER = Access("interview taker", frozenset({Role.OFFICER}), _officer_may_take)
INTERVIEW_DECIDER = Access("assigned officer", frozenset({Role.OFFICER}), _officer_assigned)
INTERVIEW_SEAT = Access("seated officer", frozenset({Role.OFFICER}), _officer_seated)
