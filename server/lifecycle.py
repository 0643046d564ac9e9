"""The life of one interview, as pure transitions: the one owner of what may happen next.

Every action of every party goes through `apply`: it is a transition (a new `Life` and the
journal events that record it), a repeat that changes nothing (no events: a double click,
a retry), or `Refused` with a message a person can act on. Nothing reopens an interview
that ended (closed, cancelled, no-show, interrupted).

    scheduled ─check-in/consent─► scheduled ─ready─► waiting ─officers seated─► in call
        │                                               ▲                          │ end
        ├──────── no-show / cancel ──────────────► (ended)                         ▼
        │                                               └── next step ◄── awaiting decisions
        ▼                                                 (two-step: CBSA      │ both decided
    cancelled                                              decided)            ▼
                                                                             closed

Joint mode has one step that seats both agencies; two-step mode a CBSA step, then a CBP
step that opens once CBSA has decided. Within a step each seat is absent, connected,
dropped (its connection failed; it may come back) or left. An officer may decide during
the call or after it ends, but not before the applicant has joined a call; each agency's
officer keeps their decision to make after "End interview", and the interview closes only
when both agencies have decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from common.errors import Conflict
from common.names import Agency
from server.types import InterviewMode

from .interview_actions import (
    Action,
    Cancel,
    CheckIn,
    Consent,
    Decide,
    Drop,
    End,
    Interrupt,
    Join,
    Leave,
    NoShow,
    Outage,
    Ready,
    Reassign,
    Seat,
    Still,
)
from .interview_state import Life, Party, Phase, Presence, presences


class RefusalKind(StrEnum):
    OVER = "over"
    NOT_YET = "not_yet"
    NOT_YOURS = "not_yours"
    ALREADY = "already"


class Refused(Conflict):
    """The action is not possible now: a 409 whose message says why (translated like any
    error that reaches a person); ``kind`` lets code decide."""

    def __init__(self, kind: RefusalKind, message: str, **fields: object) -> None:
        super().__init__(message, **fields)
        self.kind = kind


@dataclass(frozen=True)
class Outcome:
    life: Life
    events: tuple[str, ...] = ()
    """What the journal records, in order (empty: the action changed nothing)."""


def apply(life: Life, action: Action) -> Outcome:
    """The interview after ``action``; `Refused` if it may not happen now."""
    if life.ended:
        return _after_the_end(life, action)
    match action:
        case CheckIn():
            return _once(life, life.checked_in, "check-in", checked_in=True)
        case Consent():
            if not life.checked_in:
                raise Refused(RefusalKind.NOT_YET, "confirm your date of birth first")
            return _once(life, life.consented, "consent", consented=True)
        case Ready():
            return _ready(life)
        case Seat(agency=agency, officer_id=officer_id):
            return _seat(life, agency, officer_id)
        case Join(party=party):
            return _join(life, party)
        case Drop(party=party):
            return _presence(life, party, Presence.DROPPED, "drop", Presence.CONNECTED)
        case Leave(party=party):
            return _presence(life, party, Presence.LEFT, "leave", *Presence)
        case End(agency=agency):
            return _end(life, agency)
        case Decide(agency=agency, officer_id=officer_id):
            return _decide(life, agency, officer_id)
        case Reassign(agency=agency, officer_id=officer_id):
            return _reassign(life, agency, officer_id)
        case Still(agency=agency):
            if not (life.in_call(Party.of(agency)) and life.in_call(Party.APPLICANT)):
                raise Refused(RefusalKind.NOT_YET, "an ID still is captured during the call")
            if life.presence[Party.APPLICANT] is not Presence.CONNECTED:
                raise Refused(RefusalKind.NOT_YET, "the applicant is not connected")
            return Outcome(life, ("still",))
        case NoShow():
            if life.applicant_joined or life.phase is Phase.IN_CALL:
                raise Refused(RefusalKind.ALREADY, "the applicant has joined this interview")
            return Outcome(_all_gone(life).replace(phase=Phase.NO_SHOW), ("no-show",))
        case Cancel():
            if life.applicant_joined or life.phase is Phase.IN_CALL:
                raise Refused(RefusalKind.ALREADY, "an interview that has begun is not cancelled")
            return Outcome(_all_gone(life).replace(phase=Phase.CANCELLED), ("cancelled",))
        case Outage():
            return _outage(life)
        case Interrupt():
            gone = _all_gone(life)
            if life.decided == frozenset(Agency):  # nothing was left to do but end the call
                return Outcome(gone.replace(phase=Phase.CLOSED), ("close",))
            return Outcome(gone.replace(phase=Phase.INTERRUPTED), ("interrupted",))
    raise AssertionError(f"unknown action {action!r}")


def _after_the_end(life: Life, action: Action) -> Outcome:
    """An ended interview stays as it is: leaving or dropping out of it changes nothing;
    anything else is refused."""
    if isinstance(action, Leave | Drop | Outage):
        return Outcome(life)
    if isinstance(action, Decide) and action.agency in life.decided:
        raise Refused(
            RefusalKind.ALREADY, "{agency} has already decided", agency=action.agency.value
        )
    raise Refused(RefusalKind.OVER, _over(life))


def _over(life: Life) -> str:
    return {
        Phase.CLOSED: "this interview is complete",
        Phase.CANCELLED: "this interview was replaced by a newer one",
        Phase.NO_SHOW: "this interview was missed; the program office can invite again",
        Phase.INTERRUPTED: "this interview was interrupted; the program office will follow up",
    }[life.phase]


def _once(life: Life, done: bool, event: str, **changes: object) -> Outcome:
    return Outcome(life) if done else Outcome(life.replace(**changes), (event,))


def _ready(life: Life) -> Outcome:
    if not life.consented:
        raise Refused(RefusalKind.NOT_YET, "agree to the recording first")
    if life.phase in (Phase.WAITING, Phase.IN_CALL):
        return Outcome(life)  # another tab, a reload: one place in the queue
    if life.phase is Phase.AWAITING_DECISIONS:
        if life.mode is InterviewMode.TWO_STEP and life.step == Agency.CBSA.value:
            return Outcome(life)  # the CBP step opens once CBSA has decided: wait for it
        raise Refused(RefusalKind.NOT_YET, "the officers are recording their decisions")
    step = life.step or life.first_step()
    waiting = life.replace(phase=Phase.WAITING, step=step)
    return _start_call_if_staffed(waiting, ("ready",))


def _seat(life: Life, agency: Agency, officer_id: int) -> Outcome:
    if life.officers.get(agency) == officer_id:
        return Outcome(life)
    if agency in life.officers:
        raise Refused(
            RefusalKind.NOT_YOURS,
            "this interview already has a {agency} officer",
            agency=agency.value,
        )
    step = life.step or life.first_step()
    if agency not in life.step_agencies(step):
        raise Refused(RefusalKind.NOT_YET, "the CBP step opens once CBSA has decided")
    if life.phase not in (Phase.SCHEDULED, Phase.WAITING):
        raise Refused(RefusalKind.NOT_YET, "this interview is not waiting for an officer")
    officers = MappingProxyType({**life.officers, agency: officer_id})
    seated = life.replace(officers=officers, step=step)
    return _start_call_if_staffed(seated, ("seat",))


def _start_call_if_staffed(life: Life, events: tuple[str, ...]) -> Outcome:
    """The call starts, for everyone at once, when the applicant waits and every officer
    of the step is seated."""
    staffed = all(agency in life.officers for agency in life.step_agencies())
    if life.phase is Phase.WAITING and staffed:
        return Outcome(life.replace(phase=Phase.IN_CALL), (*events, "call-start"))
    return Outcome(life, events)


def _join(life: Life, party: Party) -> Outcome:
    if not life.may_join(party):
        if life.phase is Phase.IN_CALL:
            raise Refused(RefusalKind.NOT_YOURS, "this call is not yours to join")
        raise Refused(RefusalKind.NOT_YET, "there is no call to join now")
    was = life.presence[party]
    if was is Presence.CONNECTED:
        return Outcome(life)
    presence = MappingProxyType({**life.presence, party: Presence.CONNECTED})
    joined = life.applicant_joined
    if party is Party.APPLICANT and life.step:
        joined = joined | {life.step}
    event = "rejoin" if was in (Presence.DROPPED, Presence.LEFT) else "join"
    return Outcome(life.replace(presence=presence, applicant_joined=joined), (event,))


def _presence(life: Life, party: Party, to: Presence, event: str, *from_: Presence) -> Outcome:
    was = life.presence[party]
    if was is to or was not in from_ or (was is Presence.ABSENT and to is Presence.LEFT):
        return Outcome(life)
    presence = MappingProxyType({**life.presence, party: to})
    return Outcome(life.replace(presence=presence), (event,))


def _end(life: Life, agency: Agency) -> Outcome:
    if life.phase is Phase.AWAITING_DECISIONS or (
        life.phase is Phase.WAITING and life.step and agency not in life.step_agencies()
    ):
        return Outcome(life)  # the call is over already: a second click changes nothing
    if life.phase is not Phase.IN_CALL:
        raise Refused(RefusalKind.NOT_YET, "there is no call to end")
    if agency not in life.step_agencies():
        raise Refused(RefusalKind.NOT_YOURS, "only an officer of this step can end its call")
    over = _all_gone(life)
    return _after_call(over.replace(phase=Phase.AWAITING_DECISIONS), ("end",))


def _all_gone(life: Life) -> Life:
    presence = {
        party: Presence.LEFT if was is not Presence.ABSENT else was
        for party, was in life.presence.items()
    }
    return life.replace(presence=MappingProxyType(presence))


def _decide(life: Life, agency: Agency, officer_id: int) -> Outcome:
    if agency in life.decided:
        raise Refused(RefusalKind.ALREADY, "{agency} has already decided", agency=agency.value)
    if life.officers.get(agency) != officer_id:
        raise Refused(
            RefusalKind.NOT_YOURS,
            "only the {agency} officer of this interview decides",
            agency=agency.value,
        )
    if not life.awaits_decision_from(agency):
        raise Refused(RefusalKind.NOT_YET, "the applicant has not joined a call yet")
    decided = life.replace(decided=life.decided | {agency})
    return _after_call(decided, ("decision",))


def _reassign(life: Life, agency: Agency, officer_id: int) -> Outcome:
    if life.officers.get(agency) == officer_id:
        return Outcome(life)
    if life.phase is not Phase.AWAITING_DECISIONS or not life.awaits_decision_from(agency):
        raise Refused(
            RefusalKind.NOT_YET,
            "no {agency} decision is awaited from this interview",
            agency=agency.value,
        )
    officers = MappingProxyType({**life.officers, agency: officer_id})
    return Outcome(life.replace(officers=officers), ("reassign",))


def _after_call(life: Life, events: tuple[str, ...]) -> Outcome:
    """Where an interview goes once a call is over or a decision comes in: closed when
    both agencies have decided; in two-step mode, back to the waiting room for the CBP
    step once CBSA has decided; else it awaits the decisions still missing."""
    if life.phase is not Phase.AWAITING_DECISIONS:
        return Outcome(life, events)
    if life.decided == frozenset(Agency):
        return Outcome(life.replace(phase=Phase.CLOSED), (*events, "close"))
    cbsa_step_done = life.step == Agency.CBSA.value and Agency.CBSA in life.decided
    if life.mode is InterviewMode.TWO_STEP and cbsa_step_done:
        next_step = life.replace(phase=Phase.WAITING, step=Agency.CBP.value, presence=presences())
        return Outcome(next_step, (*events, "next-step"))
    return Outcome(life, events)


def _outage(life: Life) -> Outcome:
    """Every connection was lost; the call goes on once people come back. Before or
    between calls there was nothing to lose."""
    if life.phase is not Phase.IN_CALL:
        return Outcome(life)
    lost = {
        party: Presence.DROPPED if was is Presence.CONNECTED else was
        for party, was in life.presence.items()
    }
    return Outcome(life.replace(presence=MappingProxyType(lost)), ("outage",))


def replay(mode: InterviewMode, actions: list[Action]) -> Life:
    """The interview after ``actions`` from the start (refused ones change nothing)."""
    life = Life(mode)
    for action in actions:
        try:
            life = apply(life, action).life
        except Refused:
            continue
    return life
