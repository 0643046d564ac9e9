"""A booking run started from the operator's console, run in the background by the app: the
request that starts it answers at once, and a backlog takes longer to book than a reverse
proxy waits for an answer.

One run at a time in this process: starting another while one runs is refused (Conflict),
so a double click or a retried request books nothing twice. The lock is this process's;
two processes (two servers, or the CLI's ``schedule`` beside a server) may run at once and
still book each application and each officer's slot once, because each booking checks the
application's status and the slots' freedom in its own transaction (`store.bookings`):
the run that loses a slot counts it as skipped.

Its outcome (done, failed, or interrupted by a stop) goes to the operators' log when it
ends, under the operator who started it; the newest run stays readable for the console.
Closing cancels a run under way, which rolls back the booking it was writing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from common.errors import Conflict, NexusError

from . import appointments
from .operations_log import OperationsLog
from .settings import Settings
from .store import Store
from .types import Clock, InterviewMode

log = logging.getLogger(__name__)

ACTION = "schedule"
"""The operators' log's name for a booking run, as the CLI's command logs it."""


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class BookingJob:
    """One run: who started it and for what, and once it ends, what it did."""

    started_by: str
    """The operator's principal label, as the operators' log names them."""
    started_at: datetime
    days: int
    mode: InterviewMode
    state: JobState = JobState.RUNNING
    ended_at: datetime | None = None
    booked: int = 0
    pending: int = 0
    skipped: int = 0
    reason: str = ""
    """Why it failed: the refusal's message, else the kind of error (details in the log)."""

    @property
    def target(self) -> str:
        return f"{self.days} days, {self.mode}"


class BookingJobs:
    """The app's booking runs: at most one running; the newest kept for the console."""

    def __init__(
        self, store: Store, settings: Settings, operations: OperationsLog, clock: Clock
    ) -> None:
        self._store = store
        self._settings = settings
        self._operations = operations
        self._clock = clock
        self._latest: BookingJob | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def latest(self) -> BookingJob | None:
        """The run under way, else the last one that ended (None: none since the start)."""
        return self._latest

    @property
    def running(self) -> BookingJob | None:
        job = self._latest
        return job if job is not None and job.state is JobState.RUNNING else None

    def start(self, started_by: str, days: int, mode: InterviewMode) -> BookingJob:
        """Start a run in the background; Conflict if one runs or the server is stopping."""
        if self._closed:
            raise Conflict("the server is stopping; start the booking again once it is back")
        if self.running is not None:
            raise Conflict("a booking run is still running; its outcome will show on the console")
        job = self._latest = BookingJob(started_by, self._clock(), days, mode)
        self._task = asyncio.create_task(self._run(job), name="booking run")
        return job

    async def close(self) -> None:
        """Refuse new runs and cancel the one under way (logged as interrupted). Safe twice."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, job: BookingJob) -> None:
        try:
            run = await appointments.schedule(
                self._store, self._settings, job.started_at, job.days, job.mode
            )
        except asyncio.CancelledError:
            await self._end(job, JobState.INTERRUPTED, reason="the server stopped")
            raise
        except NexusError as refused:
            await self._end(job, JobState.FAILED, reason=refused.message)
        except Exception as failed:  # part of it may be booked: each booking is whole
            log.exception("the booking run started by %s failed", job.started_by)
            await self._end(job, JobState.FAILED, reason=type(failed).__name__)
        else:
            booked = len(run.appointments)
            await self._end(replace(job, booked=booked, pending=run.pending, skipped=run.skipped))

    async def _end(
        self, job: BookingJob, state: JobState = JobState.DONE, reason: str = ""
    ) -> None:
        ended = self._latest = replace(job, state=state, ended_at=self._clock(), reason=reason)
        detail: dict[str, int | str] = (
            {"booked": ended.booked, "pending": ended.pending, "skipped": ended.skipped}
            if state is JobState.DONE
            else {"reason": ended.reason}
        )
        try:
            await asyncio.to_thread(
                self._operations.record, job.started_by, ACTION, job.target,
                outcome=state.value, **detail,
            )  # fmt: skip
        except Exception:
            log.exception("the booking run's outcome could not be written to the operators' log")
