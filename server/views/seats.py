"""Who sits in an interview, as pages show it: each seated officer's name, agency and the
country they work from (the applicant sees who interviews them); and when a decision an
officer owes is overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.names import Agency

from ..settings import Settings
from ..store import Store
from ..store.interviews import Interview


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


def decision_overdue_since(now: datetime, settings: Settings) -> datetime:
    """A decision still missing for a call that ended before the returned moment is
    overdue: the end of the latest working day that has ended by ``now``."""
    local = now.astimezone(settings.office_time_zone)
    day_end = datetime.combine(local.date(), settings.decision_due_time, settings.office_time_zone)
    if day_end > local:
        day_end -= timedelta(days=1)
    return day_end.astimezone(UTC)
