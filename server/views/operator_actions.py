"""What an operator does from their console: book the coming days' appointments, as the
CLI's `schedule` does. A preview answers in the request (it writes nothing); a booking
runs in the background (`server.booking_jobs`), one at a time, and the console follows it
through `schedule_status`. Each action goes to the operators' log, done or refused, with
the operator's account; a form's outcome is shown once on the console (post, redirect, get).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web

from common.errors import BadRequest, Conflict, NexusError

from .. import appointments
from ..appkeys import BOOKING_JOBS, CLOCK, OPERATIONS, SETTINGS, STORE
from ..booking_jobs import BookingJob, JobState
from ..i18n import Translator
from ..people import People
from ..store import Store
from ..types import InterviewMode
from .http import current, json_ok, read_form, session_of, translator_of
from .whole_numbers import whole_number

MAX_DAYS = 28
"""How far ahead one run books: a month of rosters is what operators plan."""
NOTICE = "operator_notice"
"""The session's key for what the operator's last action did (shown once)."""
DRY_RUN_NOTICE = (
    "A dry run: {booked} of {pending} pending applications would be booked over the next "
    "{days} days; nothing was booked."
)
STARTED_NOTICE = (
    "Booking the next {days} days has started; its progress and outcome show under "
    "Schedule appointments."
)
STILL_RUNNING = (
    "a booking run started by {who} at {at} is still running; nothing more was started. "
    "Its outcome will show on the operator console."
)
JOB_TEXTS = {
    JobState.RUNNING: "Booking the next {days} days ({mode}), started by {who} at {at}: still "
    "running. Its outcome will show here.",
    JobState.DONE: "Booking the next {days} days ({mode}), started by {who} at {at}, ended at "
    "{ended}: {booked} of {pending} pending applications were booked; {skipped} planned "
    "could not be (taken meanwhile).",
    JobState.FAILED: "Booking the next {days} days ({mode}), started by {who} at {at}, failed "
    "at {ended}: {reason}. What was booked before stays booked; booking again books the rest.",
    JobState.INTERRUPTED: "Booking the next {days} days ({mode}), started by {who} at {at}, "
    "was interrupted at {ended}: {reason}. What was booked before stays booked; booking "
    "again books the rest.",
}
NOTICES = (DRY_RUN_NOTICE, STARTED_NOTICE, STILL_RUNNING, *JOB_TEXTS.values())


def _clock_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""


async def job_text(store: Store, T: Translator, job: BookingJob) -> str:
    """The run, as the console says it: who started it, when, for what; how it ended."""
    who = await _name_of(store, job.started_by)
    return T(
        JOB_TEXTS[job.state],
        days=job.days,
        mode=T(job.mode.value),
        who=who,
        at=_clock_time(job.started_at),
        ended=_clock_time(job.ended_at),
        booked=job.booked,
        pending=job.pending,
        skipped=job.skipped,
        reason=T(job.reason) if job.reason else "",
    )


async def _name_of(store: Store, label: str) -> str:
    return str(await People(store).named(label))


async def schedule(request: web.Request) -> web.StreamResponse:
    principal = current(request)
    operations, jobs = request.app[OPERATIONS], request.app[BOOKING_JOBS]
    try:
        form = await read_form(
            request, {"days": 2, "mode": 10, "dry_run": 1}, optional=frozenset({"dry_run"})
        )
        days = whole_number(
            form["days"], f"the days to book are a whole number from 1 to {MAX_DAYS}", 1, MAX_DAYS
        )
        if form["mode"] not in set(InterviewMode):
            raise BadRequest("the mode is joint or two_step")
        mode, dry_run = InterviewMode(form["mode"]), form.get("dry_run") == "1"
        if dry_run:
            run = await appointments.schedule(
                request.app[STORE], request.app[SETTINGS], request.app[CLOCK](), days, mode, True
            )
        else:
            running = jobs.running
            if running is not None:
                who = await _name_of(request.app[STORE], running.started_by)
                raise Conflict(STILL_RUNNING, who=who, at=_clock_time(running.started_at))
            jobs.start(principal.label, days, mode)  # logs its own outcome when it ends
    except NexusError as refused:
        await asyncio.to_thread(
            operations.record, principal.label, "schedule", outcome="refused",
            reason=refused.message,
        )  # fmt: skip
        raise
    except Exception as failed:  # the preview writes nothing: the log says it was tried
        await asyncio.to_thread(
            operations.record, principal.label, "schedule", outcome="failed",
            reason=type(failed).__name__,
        )  # fmt: skip
        raise
    T = await translator_of(request)
    notice = T(STARTED_NOTICE, days=days)
    if dry_run:
        await asyncio.to_thread(
            operations.record, principal.label, "schedule", f"{days} days, {mode}",
            outcome="dry run", booked=len(run.appointments), pending=run.pending,
            skipped=run.skipped,
        )  # fmt: skip
        notice = T(DRY_RUN_NOTICE, booked=len(run.appointments), pending=run.pending, days=days)
    (await session_of(request))[NOTICE] = notice
    raise web.HTTPSeeOther("/operator")


async def schedule_status(request: web.Request) -> web.StreamResponse:
    """The newest booking run, for the console's status region to follow without a reload:
    its state and its sentence in the caller's language (``state`` null: none yet)."""
    job = request.app[BOOKING_JOBS].latest
    if job is None:
        return json_ok({"state": None, "text": ""})
    T = await translator_of(request)
    return json_ok(
        {
            "state": job.state.value,
            "text": await job_text(request.app[STORE], T, job),
            "started_by": await _name_of(request.app[STORE], job.started_by),
            "started_at": job.started_at.isoformat(),
            "ended_at": job.ended_at.isoformat() if job.ended_at else None,
            "days": job.days,
            "mode": job.mode.value,
            "booked": job.booked,
            "pending": job.pending,
            "skipped": job.skipped,
        }
    )
