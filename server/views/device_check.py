"""The device check's relays: TURN credentials for an invitation link, before the date of
birth is confirmed, so the applicant learns whether their network can reach a call.

Anyone holding the link may ask, so what it gives is bounded twice:
- requests are counted per invitation, `CHECKS_PER_HOUR` in any hour, and the next one
  is refused with 429 and the time to wait (a check runs once per page load or "Try
  again", so a person never meets the limit);
- the credential is the same for every request in a slot of `SLOT_SECONDS`, so one link
  yields at most ``3600 / SLOT_SECONDS`` credentials an hour, each good for opening a
  relay for a few minutes (and the relay reaches only the media workers). Being a pure
  function of the link and the time, this bound holds across server processes and
  restarts, which the count (kept in the serving process) does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from common.errors import Gone, TooManyRequests

from .. import turn
from ..appkeys import CLOCK, DEVICE_CHECKS, SETTINGS
from ..settings import Settings
from .applicant import invited_interview, may_still_open, over_for_applicant
from .http import json_ok

CHECKS_PER_HOUR = 20
"""Device checks one invitation may run in any hour."""
SLOT_SECONDS = 360
"""One credential per link per slot: at most ten an hour."""
GRACE_SECONDS = 120
"""A credential outlives its slot by this much, so one handed out at a slot's end still
has time for the check (which takes seconds)."""


def slot_start(now: datetime) -> datetime:
    """The start of the slot ``now`` falls in (slots are aligned to the epoch)."""
    seconds = int(now.timestamp())
    return now - timedelta(seconds=seconds % SLOT_SECONDS, microseconds=now.microsecond)


def check_ice_servers(settings: Settings, who: str, now: datetime) -> list[turn.IceServer]:
    """The relays for the device check of ``who``, with the credential of ``now``'s slot;
    none when TURN is not configured."""
    if not settings.turn_urls or not settings.turn_secret:
        return []
    credential = turn.mint(settings.turn_secret, who, slot_start(now), SLOT_SECONDS + GRACE_SECONDS)
    return [
        turn.IceServer(
            urls=list(settings.turn_urls),
            username=credential.username,
            credential=credential.password.reveal(),
        )
    ]


async def relays(request: web.Request) -> web.StreamResponse:
    """``{"ice_servers": [...]}`` for the link's device check (``[]`` without TURN)."""
    interview = await invited_interview(request)
    if over_for_applicant(interview):
        raise Gone("this interview is over; there is nothing left to check")
    may_still_open(request, interview)
    retry = request.app[DEVICE_CHECKS].take(interview.id)
    if retry is not None:
        minutes = -(-retry // 60)
        raise TooManyRequests(
            f"the connection check has run {CHECKS_PER_HOUR} times in the last hour for this "
            f"invitation; try again in {minutes} min",
            retry,
        )
    servers = check_ice_servers(
        request.app[SETTINGS], f"{interview.id}-check", request.app[CLOCK]()
    )
    response = json_ok({"ice_servers": servers})
    response.headers["Cache-Control"] = "no-store"  # credentials: never from a cache
    return response
