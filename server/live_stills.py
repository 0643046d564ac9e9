"""ID stills of interviews in progress, held in memory so that both officers can see them.

On disk a still exists only encrypted in the session record (the server cannot read it
back); this copy lives as long as the interview's room and is dropped when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Conflict, NotFound

MAX_STILLS_PER_INTERVIEW = 12


@dataclass(frozen=True)
class Still:
    number: int
    agency: str
    jpeg: bytes


@dataclass
class LiveStills:
    _stills: dict[str, list[Still]] = field(default_factory=dict)

    def add(self, interview_id: str, agency: str, jpeg: bytes) -> Still:
        stills = self._stills.setdefault(interview_id, [])
        if len(stills) >= MAX_STILLS_PER_INTERVIEW:
            raise Conflict(
                "this interview already has {count} ID stills; that is the most kept",
                count=MAX_STILLS_PER_INTERVIEW,
            )
        still = Still(len(stills) + 1, agency, jpeg)
        stills.append(still)
        return still

    def get(self, interview_id: str, number: int) -> Still:
        stills = self._stills.get(interview_id, [])
        if not 1 <= number <= len(stills):
            raise NotFound("there is no ID still {number} in this interview", number=number)
        return stills[number - 1]

    def listing(self, interview_id: str) -> list[dict[str, object]]:
        return [
            {"number": still.number, "agency": still.agency}
            for still in self._stills.get(interview_id, [])
        ]

    def drop(self, interview_id: str) -> None:
        self._stills.pop(interview_id, None)
