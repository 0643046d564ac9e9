"""ID stills: an officer captures a full-resolution frame of the applicant's video; it is
stored encrypted in the session record and shown to the interview's officers until the
interview is over: in two-step mode the CBP officer sees the CBSA step's stills, and an
officer who ended the call sees them while deciding. The same image sent again (a double
click, a retried request) is answered with the still already kept, and nothing more is
stored or logged."""

from __future__ import annotations

import asyncio

from aiohttp import web

from signalling.appkeys import ROOMS
from signalling.types import RoomId

from ..appkeys import RECORDS, STILLS, STORE
from ..errors import BadRequest, Conflict
from ..jpeg import JpegError, check_jpeg
from .access import interview_in_path
from .http import current, json_ok, log_access, read_body
from .whole_numbers import whole_number

MAX_STILL_BYTES = 4 * 1024 * 1024
OVER = "interview {id} is over; its ID stills are no longer kept"


async def forget_if_over(app: web.Application, interview_id: str) -> bool:
    """Forget the interview's stills (key and files) if the interview is over; True if it is.

    "Over" is the store's rule, `Interview.is_open`, not a call's end: the decision store
    completes the interview when both agencies have decided, and a cancelled one is over
    too. Whatever ends an interview calls this once it has (shutdown forgets them all)."""
    interview = await app[STORE].interviews.get(interview_id)
    if interview.is_open:
        return False
    app[STILLS].drop(interview_id)
    return True


async def capture(request: web.Request) -> web.StreamResponse:
    _, agency = current(request).officer_seat()
    interview = await interview_in_path(request)
    if not interview.is_open:
        raise Conflict(OVER, id=interview.id)
    if request.content_type != "image/jpeg":
        raise BadRequest("send the still as a JPEG image with Content-Type: image/jpeg")
    jpeg = await read_body(request, MAX_STILL_BYTES)
    try:
        await asyncio.to_thread(check_jpeg, jpeg)
    except JpegError as exc:
        raise BadRequest(exc.template, **exc.fields) from None
    kept = await request.app[STILLS].add(interview.id, agency.value, jpeg)
    if await forget_if_over(request.app, interview.id):
        raise Conflict(OVER, id=interview.id)  # it ended while the still was being kept
    still = kept.still
    if not kept.new:
        return json_ok({"number": still.number, "agency": still.agency})
    await request.app[RECORDS].still(RoomId(interview.id), agency.value, still.number, jpeg)
    await log_access(request, "capture-still", interview.id)
    request.app[ROOMS].record_updated(RoomId(interview.id), "still")
    return json_ok({"number": still.number, "agency": still.agency}, status=201)


async def image(request: web.Request) -> web.StreamResponse:
    interview = await interview_in_path(request)
    number = whole_number(request.match_info["number"], "a still is named by its number")
    jpeg = await request.app[STILLS].jpeg(interview.id, number)
    await log_access(request, "view-still", f"{interview.id}/{number}")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
