"""The rule of PRODUCT.md that turns two agencies' decisions into the application's result.

Pure functions: the store calls them for every status change and writes the history row
in the same transaction, so no status ever changes another way.
"""

from __future__ import annotations

from common.errors import Conflict

from .types import ApplicationStatus, Verdict

FINAL = frozenset({ApplicationStatus.APPROVED, ApplicationStatus.DENIED})


def application_result(cbsa: Verdict, cbp: Verdict) -> ApplicationStatus:
    """Approved only if both approve; denied if either denies; otherwise referred."""
    if Verdict.DENY in (cbsa, cbp):
        return ApplicationStatus.DENIED
    if cbsa is Verdict.APPROVE and cbp is Verdict.APPROVE:
        return ApplicationStatus.APPROVED
    return ApplicationStatus.REFERRED


def status_after_invite(current: ApplicationStatus) -> ApplicationStatus:
    """An interview can be scheduled while pending, scheduled (a new link) or referred."""
    if current in FINAL:
        raise Conflict(f"the application is already {current}; it cannot be interviewed again")
    return ApplicationStatus.SCHEDULED


def status_after_booking(current: ApplicationStatus) -> ApplicationStatus:
    """A booking from the queue takes a pending application only: one that is scheduled
    was booked meanwhile (another run, the console and the CLI at once)."""
    if current is not ApplicationStatus.PENDING:
        raise Conflict(f"the application is {current}, not pending: it was booked meanwhile")
    return ApplicationStatus.SCHEDULED


def status_after_decisions(
    current: ApplicationStatus, cbsa: Verdict | None, cbp: Verdict | None
) -> ApplicationStatus:
    """The status once a decision is stored; unchanged until both agencies have decided."""
    if current is not ApplicationStatus.SCHEDULED:
        raise Conflict(f"the application is {current}, not awaiting an interview decision")
    if cbsa is None or cbp is None:
        return current
    return application_result(cbsa, cbp)
