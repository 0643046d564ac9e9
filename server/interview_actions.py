"""What the parties of an interview do, as the lifecycle (`server.lifecycle`) takes it: one
dataclass per action, and the form the journal writes them in (`action_fields`,
`action_from`) so that a restart can replay them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from common.names import Agency

from .interview_state import Party


@dataclass(frozen=True)
class CheckIn:
    """The applicant confirmed their date of birth."""


@dataclass(frozen=True)
class Consent:
    """The applicant agreed to be recorded."""


@dataclass(frozen=True)
class Ready:
    """The applicant entered the waiting room."""


@dataclass(frozen=True)
class Seat:
    """An officer takes their agency's place (by clicking "Take" or by the pairing)."""

    agency: Agency
    officer_id: int


@dataclass(frozen=True)
class Join:
    party: Party


@dataclass(frozen=True)
class Drop:
    """A party's connection failed; their place is kept for the grace period."""

    party: Party


@dataclass(frozen=True)
class Leave:
    party: Party


@dataclass(frozen=True)
class End:
    """An officer ends the current step's call for everyone."""

    agency: Agency


@dataclass(frozen=True)
class Decide:
    agency: Agency
    officer_id: int


@dataclass(frozen=True)
class Reassign:
    """Another officer of the agency takes over a decision left overdue (the shell decides
    when it is overdue: the transition only checks that a decision is awaited)."""

    agency: Agency
    officer_id: int


@dataclass(frozen=True)
class Still:
    """An officer captures an ID still of the applicant."""

    agency: Agency


@dataclass(frozen=True)
class NoShow:
    """The applicant did not join in time."""


@dataclass(frozen=True)
class Cancel:
    """The operator replaced or withdrew the invitation."""


@dataclass(frozen=True)
class Outage:
    """The server restarted: every connection was lost."""


@dataclass(frozen=True)
class Interrupt:
    """The interview cannot go on (an outage nobody came back from)."""


Action = (
    CheckIn
    | Consent
    | Ready
    | Seat
    | Join
    | Drop
    | Leave
    | End
    | Decide
    | Reassign
    | Still
    | NoShow
    | Cancel
    | Outage
    | Interrupt
)

_ACTION_NAMES: Mapping[type, str] = MappingProxyType(
    {
        CheckIn: "check-in",
        Consent: "consent",
        Ready: "ready",
        Seat: "seat",
        Join: "join",
        Drop: "drop",
        Leave: "leave",
        End: "end",
        Decide: "decide",
        Reassign: "reassign",
        Still: "still",
        NoShow: "no-show",
        Cancel: "cancel",
        Outage: "outage",
        Interrupt: "interrupt",
    }
)
_ACTIONS: Mapping[str, type] = MappingProxyType({v: k for k, v in _ACTION_NAMES.items()})


def action_fields(action: Action) -> dict[str, object]:
    """The action as the journal writes it, so that a restart can replay the journal."""
    fields: dict[str, object] = {"do": _ACTION_NAMES[type(action)]}
    for item in dataclasses.fields(action):
        fields[item.name] = getattr(action, item.name)
    return fields


def action_from(fields: Mapping[str, object]) -> Action | None:
    """The action `action_fields` wrote (None for anything else)."""
    kind = _ACTIONS.get(str(fields.get("do")))
    if kind is None:
        return None
    values: dict[str, object] = {}
    for item in dataclasses.fields(kind):
        raw = fields.get(item.name)
        if item.name == "agency":
            raw = Agency(str(raw))
        elif item.name == "party":
            raw = Party(str(raw))
        elif item.name == "officer_id":
            raw = int(str(raw))
        values[item.name] = raw
    action: Action = kind(**values)
    return action
