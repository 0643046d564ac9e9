"""How people are named to people. Logs and events keep a principal's label
(``officer:1:CBSA``, ``auditor:5``, ``applicant:iv_…``, ``unknown:<name>`` for a sign-in
under a name no account has): stable and exact, for machines. Pages and answers show a
person instead: their display name with their role and agency (officers) or organisation
(auditors), looked up when shown."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import NotFound

from .auth import Principal
from .store import Store
from .types import Role

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    """applicant, officer, auditor; or ``unknown`` (no account goes by that name)."""
    agency: str | None = None
    organisation: str | None = None

    def __str__(self) -> str:
        """``Jane Doe (CBSA)``, ``Ann Auditor (Audit body)``; an applicant by name alone."""
        detail = self.agency or self.organisation
        return f"{self.name} ({detail})" if detail else self.name

    def as_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "role": self.role,
            "agency": self.agency,
            "organisation": self.organisation,
            "shown": str(self),
        }


class People:
    """Names for principal labels, each looked up once: make one per page or answer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, Person] = {}

    async def named(self, label: str) -> Person:
        person = self._known.get(label)
        if person is None:
            person = self._known[label] = await self._look_up(label)
        return person

    async def _look_up(self, label: str) -> Person:
        role, _, rest = label.partition(":")
        try:
            if role == Role.APPLICANT:
                return await self._applicant(rest)
            if role in (Role.OFFICER, Role.AUDITOR, Role.OPERATOR):
                number = rest.partition(":")[0]
                if number.isascii() and number.isdigit():
                    return await self.account(int(number))
        except NotFound:
            pass  # a record since gone: say so rather than show the label
        if role == UNKNOWN and rest:
            return Person(rest, UNKNOWN)
        return Person("?", UNKNOWN)

    async def account(self, account_id: int) -> Person:
        account = await self._store.accounts.get(account_id)
        return Person(
            account.display_name,
            account.role.value,
            account.agency.value if account.agency else None,
            account.organisation,
        )

    async def _applicant(self, interview_id: str) -> Person:
        interview = await self._store.interviews.get(interview_id)
        application = await self._store.applications.get(interview.application_id)
        return Person(f"{application.given_names} {application.surname}", Role.APPLICANT.value)


async def signed_in_as(store: Store, principal: Principal | None) -> str | None:
    """What a page's header says about who is signed in (staff only: an applicant's page
    names no one)."""
    if principal is None or principal.role is Role.APPLICANT or principal.account_id is None:
        return None
    try:
        return str(await People(store).account(principal.account_id))
    except NotFound:
        return None  # the sign-in outlived its account: the page names no one
