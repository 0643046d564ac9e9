"""ID stills: an officer captures a full-resolution frame of the applicant's video; it is
stored encrypted in the session record and shown to the interview's officers until the
interview is over: in two-step mode the CBP officer sees the CBSA step's stills, and an
officer who ended the call sees them while deciding. The same image sent again (a double
click, a retried request) is answered with the still already kept, and nothing more is
stored or logged."""

from __future__ import annotations

import asyncio

from aiohttp import web

from common.errors import BadRequest, Conflict
from common.names import RoomId

from ..appkeys import LIVES, RECORDS, STILLS
from ..interview_actions import Still
from ..jpeg import JpegError, check_jpeg
from .access import interview_in_path
from .http import current, json_ok, log_access, read_body
from .whole_numbers import whole_number

MAX_STILL_BYTES = 4 * 1024 * 1024
OVER = "interview {id} is over; its ID stills are no longer kept"


async def capture(request: web.Request) -> web.StreamResponse:
    _, agency = current(request).officer_seat()
    interview = await interview_in_path(request)
    lives, still_action = request.app[LIVES], Still(agency)
    if interview.life.ended:
        raise Conflict(OVER, id=interview.id)
    if request.content_type != "image/jpeg":
        raise BadRequest("send the still as a JPEG image with Content-Type: image/jpeg")
    await lives.check(interview.id, still_action)
    jpeg = await read_body(request, MAX_STILL_BYTES)
    try:
        await asyncio.to_thread(check_jpeg, jpeg)
    except JpegError as exc:
        raise BadRequest(exc.template, **exc.fields) from None
    stills = request.app[STILLS]
    kept = await stills.add(interview.id, agency.value, jpeg)
    still = kept.still
    if not kept.new:
        # The same image again (a double click): answered as the first request ends.
        if await asyncio.shield(kept.recorded):
            return json_ok({"number": still.number, "agency": still.agency})
        await lives.check(interview.id, still_action)  # why the first was refused
        raise Conflict("the ID still was not kept; capture it again")
    records = request.app[RECORDS]

    async def sealed() -> dict[str, object]:
        name = f"still-{still.number:03d}.jpg.age"
        fields = await records.sealed_file(RoomId(interview.id), name, jpeg)
        return {"agency": agency.value, "number": still.number, **fields}

    try:
        await lives.act(interview.id, still_action, prepare=sealed)
    except BaseException:
        stills.drop_still(interview.id, still.number)  # kept, but not recorded
        raise
    stills.settle(interview.id, still.number)
    await log_access(request, "capture-still", interview.id)
    return json_ok({"number": still.number, "agency": still.agency}, status=201)


async def image(request: web.Request) -> web.StreamResponse:
    interview = await interview_in_path(request)
    number = whole_number(request.match_info["number"], "a still is named by its number")
    jpeg = await request.app[STILLS].jpeg(interview.id, number)
    await log_access(request, "view-still", f"{interview.id}/{number}")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
