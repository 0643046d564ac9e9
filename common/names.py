"""Names shared by the control plane and the media plane: the agencies, an interview's
seats, the kinds of media, and the ids of rooms and participants."""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

ParticipantId = NewType("ParticipantId", str)
RoomId = NewType("RoomId", str)
"""A room carries one interview and is named after it."""


class Agency(StrEnum):
    CBSA = "CBSA"
    CBP = "CBP"

    @property
    def home_country(self) -> str:
        return "CA" if self is Agency.CBSA else "US"


class Seat(StrEnum):
    """The three places in an interview; a forwarded stream is named after its seat."""

    APPLICANT = "applicant"
    CBSA = "cbsa"
    CBP = "cbp"

    @classmethod
    def of(cls, agency: Agency) -> Seat:
        """An officer's seat is their agency's."""
        return cls.CBSA if agency is Agency.CBSA else cls.CBP


class Kind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
