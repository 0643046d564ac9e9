"""Who sits in an interview, as pages show it: each seated officer's name, agency and the
country they work from (the applicant sees who interviews them)."""

from __future__ import annotations

from ..store import Store
from ..store.interviews import Interview
from ..types import Agency, InterviewMode


async def seated_officers(store: Store, interview: Interview) -> dict[str, dict[str, str | None]]:
    seated: dict[str, dict[str, str | None]] = {}
    for agency in Agency:
        account_id = interview.officer_for(agency)
        if account_id is not None:
            account = await store.accounts.get(account_id)
            seated[agency.value.lower()] = {
                "name": account.display_name,
                "agency": agency.value,
                "country": account.country,
            }
    return seated


def call_over(interview: Interview, ended_by: set[str]) -> bool:
    """No call of ``interview`` is coming back: its joint call was ended, or the CBP step
    of a two-step one. ``ended_by``: the seats that ended a call (`EventStore.ended_by`)."""
    return "cbp" in ended_by or (interview.mode is InterviewMode.JOINT and bool(ended_by))
