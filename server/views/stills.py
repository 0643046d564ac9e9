"""ID stills: an officer captures a full-resolution frame of the applicant's video; it is
stored encrypted in the session record and shown to both officers while the interview runs."""

from __future__ import annotations

from aiohttp import web

from signalling.appkeys import ROOMS
from signalling.types import RoomId

from ..appkeys import RECORDS, STILLS
from ..errors import BadRequest
from .access import interview_in_path
from .http import current, json_ok, log_access, read_body

MAX_STILL_BYTES = 4 * 1024 * 1024
JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


async def capture(request: web.Request) -> web.StreamResponse:
    _, agency = current(request).officer_seat()
    interview = await interview_in_path(request)
    if request.content_type != "image/jpeg":
        raise BadRequest("send the still as a JPEG image with Content-Type: image/jpeg")
    jpeg = await read_body(request, MAX_STILL_BYTES)
    if not (jpeg.startswith(JPEG_START) and jpeg.rstrip(b"\0").endswith(JPEG_END)):
        raise BadRequest("the still is not a complete JPEG image")
    still = request.app[STILLS].add(interview.id, agency.value, jpeg)
    request.app[RECORDS].still(RoomId(interview.id), agency.value, still.number, jpeg)
    await log_access(request, "capture-still", interview.id)
    request.app[ROOMS].record_updated(RoomId(interview.id), "still")
    return json_ok({"number": still.number, "agency": still.agency}, status=201)


async def image(request: web.Request) -> web.StreamResponse:
    interview = await interview_in_path(request)
    number = request.match_info["number"]
    if not number.isdigit():
        raise BadRequest("a still is named by its number")
    still = request.app[STILLS].get(interview.id, int(number))
    await log_access(request, "view-still", f"{interview.id}/{still.number}")
    return web.Response(
        body=still.jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
    )
