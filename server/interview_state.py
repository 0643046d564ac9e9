"""An interview's state, as the lifecycle (`server.lifecycle`) leaves it between actions: its
phase, whose step it is, who is seated and who is connected; and the JSON the store keeps
of it (`encode`, `decode`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import msgspec

from common.names import Agency
from server.types import InterviewMode

JOINT_STEP = "joint"


class Phase(StrEnum):
    SCHEDULED = "scheduled"
    """Invited; the applicant may check in (date of birth) and consent."""
    WAITING = "waiting"
    """The applicant is in the waiting room for the current step."""
    IN_CALL = "in_call"
    """The current step's officers are seated; its call is on."""
    AWAITING_DECISIONS = "awaiting_decisions"
    """The call is over; an agency whose turn it was has not decided yet."""
    CLOSED = "closed"
    """Both agencies have decided."""
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    INTERRUPTED = "interrupted"


ENDED = frozenset({Phase.CLOSED, Phase.CANCELLED, Phase.NO_SHOW, Phase.INTERRUPTED})


class Presence(StrEnum):
    ABSENT = "absent"
    CONNECTED = "connected"
    DROPPED = "dropped"
    LEFT = "left"


class Party(StrEnum):
    """Who sits in a call: the applicant, or an agency's officer."""

    APPLICANT = "applicant"
    CBSA = "cbsa"
    CBP = "cbp"

    @classmethod
    def of(cls, agency: Agency) -> Party:
        return cls.CBSA if agency is Agency.CBSA else cls.CBP

    @property
    def agency(self) -> Agency | None:
        return {Party.CBSA: Agency.CBSA, Party.CBP: Agency.CBP}.get(self)


def presences(present: Mapping[Party, Presence] | None = None) -> Mapping[Party, Presence]:
    return MappingProxyType(dict(present or dict.fromkeys(Party, Presence.ABSENT)))


@dataclass(frozen=True)
class Life:
    mode: InterviewMode
    phase: Phase = Phase.SCHEDULED
    checked_in: bool = False
    consented: bool = False
    step: str | None = None
    """``joint``, or the agency (``CBSA``/``CBP``) whose two-step step it is; None before
    the first step starts."""
    officers: Mapping[Agency, int] = field(default_factory=lambda: MappingProxyType({}))
    presence: Mapping[Party, Presence] = field(default_factory=presences)
    applicant_joined: frozenset[str] = frozenset()
    """The steps whose call the applicant has joined."""
    decided: frozenset[Agency] = frozenset()

    @property
    def ended(self) -> bool:
        return self.phase in ENDED

    def step_agencies(self, step: str | None = None) -> tuple[Agency, ...]:
        """The agencies a step seats."""
        step = step or self.step
        if step == JOINT_STEP:
            return (Agency.CBSA, Agency.CBP)
        return (Agency(step),) if step else ()

    def first_step(self) -> str:
        return JOINT_STEP if self.mode is InterviewMode.JOINT else Agency.CBSA.value

    def in_call(self, party: Party) -> bool:
        """``party`` belongs in the current call."""
        if self.phase is not Phase.IN_CALL:
            return False
        return party is Party.APPLICANT or party.agency in self.step_agencies()

    def may_join(self, party: Party) -> bool:
        """``party`` may connect to the current step's call now."""
        return self.in_call(party) or self.may_wait_in_call(party)

    def may_wait_in_call(self, party: Party) -> bool:
        """An officer seated for the step to come may sit in its call before the applicant
        is called (they see each other; the applicant's place shows as not connected)."""
        agency = party.agency
        if agency is None or self.phase not in (Phase.SCHEDULED, Phase.WAITING):
            return False
        return agency in self.officers and agency in self.step_agencies()

    def awaits_decision_from(self, agency: Agency) -> bool:
        """An agency's officer still has a decision to make (their form stays open)."""
        if self.ended or agency in self.decided or agency not in self.officers:
            return False
        return any(agency in self.step_agencies(step) for step in self.applicant_joined)

    def replace(self, **changes: object) -> Life:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class _Stored(msgspec.Struct, forbid_unknown_fields=True):
    mode: InterviewMode
    phase: Phase
    checked_in: bool
    consented: bool
    step: str | None
    officers: dict[Agency, int]
    presence: dict[Party, Presence]
    applicant_joined: list[str]
    decided: list[Agency]


def encode(life: Life) -> bytes:
    """What the store keeps of a life (JSON; `decode` reads it back)."""
    return msgspec.json.encode(
        _Stored(
            life.mode,
            life.phase,
            life.checked_in,
            life.consented,
            life.step,
            dict(life.officers),
            dict(life.presence),
            sorted(life.applicant_joined),
            sorted(life.decided),
        )
    )


def decode(raw: bytes | str) -> Life:
    stored = msgspec.json.decode(raw, type=_Stored)
    return Life(
        mode=stored.mode,
        phase=stored.phase,
        checked_in=stored.checked_in,
        consented=stored.consented,
        step=stored.step,
        officers=MappingProxyType(stored.officers),
        presence=presences(stored.presence),
        applicant_joined=frozenset(stored.applicant_joined),
        decided=frozenset(stored.decided),
    )
